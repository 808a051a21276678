"""The estimator's contract, its calibration, the time split and the metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from dealscore.features import (
    FEATURE_NAMES,
    SnapshotSettings,
    build_features,
    fit_feature_state,
    sample_snapshots,
)
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.metrics import (
    evaluate,
    expected_calibration_error,
    lift_by_decile,
    reliability_table,
)
from dealscore.model.split import SLICES, SliceShares, assign_slices
from dealscore.schemas import validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-06-01", tz="UTC")


@pytest.fixture(scope="module")
def slices():
    tables, _ = validate_tables(
        generate_crm(GeneratorSettings(deals=4000, seed=2, export_date=EXPORT)).tables
    )
    snaps = sample_snapshots(
        tables.opportunities, EXPORT, SnapshotSettings(scheme="per_deal", per_deal=3)
    )
    features = build_features(
        tables, snaps[["opportunity_id", "as_of"]], fit_feature_state(tables, EXPORT)
    )
    rows = snaps.merge(features, on=["opportunity_id", "as_of"])
    rows["slice"] = assign_slices(
        rows, tables.opportunities, SliceShares().boundaries(tables.opportunities)
    )
    return {name: rows[rows["slice"] == name] for name in SLICES}


def fitted(slices, **params) -> WinProbabilityModel:
    train, val, cal = slices["train"], slices["validation"], slices["calibration"]
    return WinProbabilityModel(n_estimators=300, learning_rate=0.05, **params).fit(
        train[FEATURE_NAMES],
        train["label"],
        X_val=val[FEATURE_NAMES],
        y_val=val["label"],
        X_cal=cal[FEATURE_NAMES],
        y_cal=cal["label"],
    )


def test_slices_follow_close_dates_and_never_split_a_deal(slices):
    last = {name: frame["as_of"].max() for name, frame in slices.items()}
    assert all(len(frame) > 100 for frame in slices.values())
    assert last["train"] <= last["validation"] <= last["calibration"] <= last["test"]
    deals = [set(frame["opportunity_id"]) for frame in slices.values()]
    assert all(not (a & b) for i, a in enumerate(deals) for b in deals[i + 1 :])


def test_model_learns_and_its_probabilities_are_calibrated(slices):
    # when
    model = fitted(slices)
    test = slices["test"]
    p = model.predict_proba(test[FEATURE_NAMES])[:, 1]
    scores = evaluate(test["label"].to_numpy(), p)
    # then: real signal, honest probabilities, and better than predicting the base rate
    assert scores["roc_auc"] > 0.75
    assert scores["ece"] < 0.06
    base = np.full(len(test), slices["train"]["label"].mean())
    assert scores["brier"] < evaluate(test["label"].to_numpy(), base)["brier"] * 0.85
    assert model.calibration_ in ("isotonic", "sigmoid") and 0 < model.best_iteration_ <= 300


def test_scikit_learn_contract(slices):
    model = WinProbabilityModel(n_estimators=50, calibration="sigmoid")
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict_proba(slices["test"][FEATURE_NAMES])
    fitted_model = fitted(slices, calibration="sigmoid")
    assert fitted_model.calibration_ == "sigmoid"
    assert list(fitted_model.classes_) == [0, 1]
    p = fitted_model.predict_proba(slices["test"][FEATURE_NAMES])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert set(fitted_model.predict(slices["test"][FEATURE_NAMES])) <= {0, 1}


def test_a_slice_with_one_outcome_is_refused(slices):
    train, val, cal = slices["train"], slices["validation"], slices["calibration"]
    with pytest.raises(ValueError, match="calibration slice needs both"):
        WinProbabilityModel(n_estimators=20).fit(
            train[FEATURE_NAMES],
            train["label"],
            X_val=val[FEATURE_NAMES],
            y_val=val["label"],
            X_cal=cal[FEATURE_NAMES],
            y_cal=np.zeros(len(cal)),
        )


def test_metrics_on_known_cases():
    y = np.array([0, 0, 1, 1])
    perfect = evaluate(y, np.array([0.1, 0.2, 0.8, 0.9]))
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0
    # a bin predicting 0.5 where half win is perfectly calibrated
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.full(4, 0.5)) == 0.0
    assert expected_calibration_error(np.array([1, 1, 1, 1]), np.full(4, 0.25)) == pytest.approx(
        0.75
    )
    table = reliability_table(np.array([0, 1, 1]), np.array([0.05, 0.95, 0.95]))
    assert table["count"].tolist() == [1, 2] and table["observed"].tolist() == [0.0, 1.0]
    lift = lift_by_decile(np.array([1] * 10 + [0] * 90), np.linspace(1, 0, 100))
    assert lift.loc[0, "lift"] == pytest.approx(10.0) and len(lift) == 10


def test_bad_shares_are_refused():
    with pytest.raises(ValueError):
        SliceShares(train=0.9, validation=0.1, calibration=0.1, test=0.1)
