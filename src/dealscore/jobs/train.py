"""Job: train the win-probability model on time-sliced snapshots and compare it with baselines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dealscore.features import (
    FEATURE_NAMES,
    SnapshotSettings,
    build_features,
    fit_feature_state,
    sample_snapshots,
)
from dealscore.features.baselines import crm_baselines
from dealscore.io import read_export
from dealscore.jobs.features import load_icp
from dealscore.model.baselines import logistic_baseline
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.evaluation import by_outcome, compare
from dealscore.model.split import SLICES, SliceShares, assign_slices
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities, Status, require_valid

TRUTH_FILE = "truth.parquet"  # written by `dealscore generate`; read only to report the oracle


@dataclass(frozen=True)
class TrainSettings:
    snapshot_scheme: str = "per_deal"
    snapshots_per_deal: int = 4
    every_days: float = 14.0
    train_share: float = 0.6
    validation_share: float = 0.1
    calibration_share: float = 0.15
    test_share: float = 0.15
    min_won: int = 50
    min_not_won: int = 50
    n_estimators: int = 2000
    learning_rate: float = 0.03
    num_leaves: int = 31
    min_child_samples: int = 50
    early_stopping_rounds: int = 100
    calibration: str = "auto"
    seed: int = 0
    icp: str = "features/icp.yaml"

    def snapshots(self) -> SnapshotSettings:
        return SnapshotSettings(
            self.snapshot_scheme, self.snapshots_per_deal, self.every_days, self.seed
        )  # type: ignore[arg-type]

    def shares(self) -> SliceShares:
        return SliceShares(
            self.train_share, self.validation_share, self.calibration_share, self.test_share
        )

    def model(self) -> WinProbabilityModel:
        return WinProbabilityModel(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            early_stopping_rounds=self.early_stopping_rounds,
            calibration=self.calibration,  # type: ignore[arg-type]
            random_state=self.seed,
        )


class DataMinimumError(ValueError):
    """Too few resolved deals to train on."""


@dataclass(frozen=True)
class TrainResult:
    model: WinProbabilityModel
    comparison: pd.DataFrame  # contender x segment metrics on the same test rows
    outcomes: pd.DataFrame  # the model's mean probability per final outcome, test rows
    slice_rows: dict[str, int]
    boundaries: pd.Series


def check_minimums(tables: CrmTables, settings: TrainSettings) -> None:
    status = tables.opportunities[Opportunities.status]
    won = int((status == Status.WON).sum())
    not_won = int(status.isin([Status.LOST, Status.NO_DECISION]).sum())
    if won < settings.min_won or not_won < settings.min_not_won:
        raise DataMinimumError(
            f"too little history to train: {won:,} won and {not_won:,} lost or no-decision resolved deals; "
            f"need at least {settings.min_won:,} and {settings.min_not_won:,} (min_won / min_not_won)"
        )


def _oracle(data: str | Path, rows: pd.DataFrame) -> np.ndarray | None:
    truth_path = Path(str(data)) / TRUTH_FILE
    if "://" in str(data) or not truth_path.is_file():
        return None
    truth = pd.read_parquet(truth_path, columns=["opportunity_id", "p_win"]).set_index(
        "opportunity_id"
    )["p_win"]
    return rows["opportunity_id"].map(truth).to_numpy(dtype=float)


def run_train(
    data: str | Path,
    settings: TrainSettings,
    mapping: str | Path | None = None,
    progress: Progress = silent,
) -> TrainResult:
    progress(f"reading {data}")
    export = read_export(data, mapping)
    tables = require_valid(export.tables, export.source)
    check_minimums(tables, settings)
    deals = tables.opportunities
    cutoff = max(
        deals[Opportunities.created_at].max(), deals[Opportunities.closed_at].max()
    ) + pd.Timedelta(microseconds=1)
    boundaries = settings.shares().boundaries(deals)
    # Learned once, from history before the training slice ends, and kept for scoring.
    icp = load_icp(Path(settings.icp)) if settings.icp and Path(settings.icp).is_file() else ()
    state = fit_feature_state(tables, boundaries["validation"], icp)

    progress("sampling snapshots and building features")
    snaps = sample_snapshots(deals, cutoff, settings.snapshots())
    features = build_features(tables, snaps[["opportunity_id", "as_of"]], state)
    rows = snaps.merge(features, on=["opportunity_id", "as_of"], validate="one_to_one")
    rows["slice"] = assign_slices(rows, deals, boundaries)
    parts = {name: rows[rows["slice"] == name] for name in SLICES}
    progress("slices: " + ", ".join(f"{name} {len(part):,}" for name, part in parts.items()))

    progress("training LightGBM (early stopping on the validation slice), calibrating")
    train, val, cal, test = (parts[name] for name in SLICES)
    model = settings.model().fit(
        train[FEATURE_NAMES],
        train["label"],
        X_val=val[FEATURE_NAMES],
        y_val=val["label"],
        X_cal=cal[FEATURE_NAMES],
        y_cal=cal["label"],
        sample_weight=train["weight"].to_numpy(),
    )
    progress("evaluating against the baselines on the test slice")
    logistic = logistic_baseline().fit(train[FEATURE_NAMES], train["label"])
    crm = crm_baselines(tables, test[["opportunity_id", "as_of"]])
    crm = test[["opportunity_id", "as_of"]].merge(crm, on=["opportunity_id", "as_of"], how="left")
    contenders = {
        "model": model.predict_proba(test[FEATURE_NAMES])[:, 1],
        "logistic_regression": logistic.predict_proba(test[FEATURE_NAMES])[:, 1],
        "rep_forecast": crm["rep_probability"].to_numpy(dtype=float),
        "stage_probability": crm["stage_probability"].to_numpy(dtype=float),
    }
    oracle = _oracle(data, test)
    if oracle is not None:
        contenders["oracle_latent_p_win"] = oracle
    # A contender the export cannot provide (no forecasts, say) is left out, not scored on nothing.
    contenders = {name: p for name, p in contenders.items() if np.isfinite(p).mean() > 0.5}
    comparison = compare(test, contenders)
    return TrainResult(
        model=model,
        comparison=comparison,
        outcomes=by_outcome(test, contenders["model"]),
        slice_rows={name: len(part) for name, part in parts.items()},
        boundaries=boundaries,
    )
