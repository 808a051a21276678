"""A generated export shared by the job tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dealscore.jobs.generate import run_generate
from dealscore.synthetic import GeneratorSettings


@pytest.fixture(scope="session")
def crm(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("crm")
    run_generate(
        GeneratorSettings(deals=3000, seed=9, export_date=pd.Timestamp("2026-06-01", tz="UTC")),
        out,
        progress=lambda _: None,
    )
    return out
