"""Point-in-time features: pure functions of (tables, as_of); no I/O, no clock, no MLflow."""

from dealscore.features.build import (
    CATALOGUE,
    FEATURE_NAMES,
    QUARTER_CATALOGUE,
    QUARTER_FEATURE_NAMES,
    FeatureState,
    build_features,
    fit_feature_state,
)
from dealscore.features.icp import IcpRule, parse_icp
from dealscore.features.snapshots import SnapshotSettings

__all__ = [
    "CATALOGUE",
    "FEATURE_NAMES",
    "QUARTER_CATALOGUE",
    "QUARTER_FEATURE_NAMES",
    "FeatureState",
    "IcpRule",
    "SnapshotSettings",
    "build_features",
    "fit_feature_state",
    "parse_icp",
]
