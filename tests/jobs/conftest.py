"""A generated export and a champion trained on it, shared by the job tests (once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from dealscore.features import build_features
from dealscore.io import read_export, write_tables
from dealscore.jobs.generate import run_generate
from dealscore.jobs.train import run_train
from dealscore.pipeline.training import TrainSettings
from dealscore.synthetic import GeneratorSettings

SCORING_AS_OF = pd.Timestamp("2026-05-01", tz="UTC")  # before the export's date (2026-06-01)


@pytest.fixture(scope="session")
def crm(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("crm")
    run_generate(
        GeneratorSettings(deals=3000, seed=9, export_date=pd.Timestamp("2026-06-01", tz="UTC")),
        out,
        progress=lambda _: None,
    )
    return out


@pytest.fixture(scope="session")
def model_store(crm, tmp_path_factory) -> str:
    """A tracking store holding a champion trained on `crm` (the scoring tests only read it)."""
    folder = tmp_path_factory.mktemp("models")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        run_train(
            crm,
            TrainSettings(
                n_estimators=80,
                learning_rate=0.1,
                icp="",
                tracking_uri=uri,
                forward_dates=0,
                # fixed: the scoring tests score copies of `crm` in other folders
                registered_model="dealscore",
                # boosted trees: scoring walks them for reasons (linear rungs: tests/model)
                ladder=("lightgbm",),
            ),
        )
    return uri


@pytest.fixture
def unknown_stages(crm) -> Callable[[Path, float], Path]:
    """Writes a copy of `crm` where a share of the deals open at SCORING_AS_OF moved, an hour
    before it, to a stage no model has seen ('legal_review')."""

    def write(folder: Path, share: float) -> Path:
        tables = read_export(crm).tables
        open_ids = build_features(tables, SCORING_AS_OF)["opportunity_id"]
        chosen = open_ids.sample(frac=share, random_state=1)
        rows = pd.DataFrame(
            {
                "opportunity_id": chosen.to_numpy(),
                "changed_at": SCORING_AS_OF - pd.Timedelta(hours=1),
                "stage": "legal_review",
            }
        )
        history = pd.concat([tables.stage_history, rows], ignore_index=True)
        write_tables(tables.with_tables(stage_history=history), folder)
        return folder

    return write
