"""The truth files `dealscore generate` writes beside a synthetic export (never read by scoring)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dealscore.io.write import write_frame
from dealscore.synthetic import GeneratorSettings, SyntheticCrm
from dealscore.synthetic.truth import Truth

TRUTH_FILE = "truth.parquet"
PATH_FILE = "truth_path.parquet"
SETTINGS_FILE = "truth_settings.json"


def write_truth(crm: SyntheticCrm, settings: GeneratorSettings, out: Path) -> list[Path]:
    """Per-deal truth, every deal's hidden path, and the knobs that rebuild the process."""
    files = [write_frame(crm.truth, out / TRUTH_FILE), write_frame(crm.path, out / PATH_FILE)]
    text = json.dumps(settings.to_dict(), indent=2) + "\n"
    tmp = out / f".{SETTINGS_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out / SETTINGS_FILE)
    return [*files, out / SETTINGS_FILE]


def read_truth(folder: str | Path) -> Truth | None:
    """The truth of a generated export, or None when the folder holds none (a real export)."""
    if "://" in str(folder):
        return None
    root = Path(str(folder))
    names = (TRUTH_FILE, PATH_FILE, SETTINGS_FILE)
    if not all((root / name).is_file() for name in names):
        return None
    raw = json.loads((root / SETTINGS_FILE).read_text(encoding="utf-8"))
    known = set(GeneratorSettings.__dataclass_fields__)
    settings = GeneratorSettings(**{k: v for k, v in raw.items() if k in known})
    return Truth(pd.read_parquet(root / TRUTH_FILE), pd.read_parquet(root / PATH_FILE), settings)
