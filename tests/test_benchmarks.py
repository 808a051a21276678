"""The benchmarks still run: each, at a tiny size, prints its figures and exits 0. (Their figures
at full size are in the README; these runs only keep the scripts working as the code moves.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow  # run by make test-all (CI)
@pytest.mark.parametrize(
    ("script", "args", "said"),
    [
        ("generate_validate.py", ["--deals", "2000"], "validate"),
        ("features.py", ["--deals", "2000", "--snapshots", "4000"], "features"),
        ("score.py", ["--deals", "2000", "--history", "4000", "--runs", "2"], "(median of 2)"),
        ("quarters.py", ["--worlds", "honest", "--periods", "1"], "the last 4 quarters"),
        ("write.py", ["--rows", "2000"], "SQLite rerun (replace)"),
    ],
)
def test_a_benchmark_runs_at_a_tiny_size(script, args, said, tmp_path):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert said in done.stdout
