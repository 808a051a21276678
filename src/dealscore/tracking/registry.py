"""The model registry: every new version is the `challenger`; it becomes the `champion` only if
it is not worse than the current champion on the same test rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from dealscore.io.read import dataset_name

CHAMPION = "champion"
CHALLENGER = "challenger"
PREFIX = "dealscore"


def model_name(data: str | Path) -> str:
    """The registered model of an export's CRM: one name per dataset, so training on another
    CRM never replaces this one's champion (data/demo/crm -> dealscore-demo-crm)."""
    name = dataset_name(data)
    return f"{PREFIX}-{name}" if name else PREFIX


def champion_uri(data: str | Path) -> str:
    """`models:/<the export's model>@champion`: what score, compare and report use by default."""
    return f"models:/{model_name(data)}@{CHAMPION}"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def current_champion(client: mlflow.MlflowClient, name: str) -> ModelVersion | None:
    """The version the `champion` alias points to; None if the model or the alias is new."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def decide(
    metric: str,
    challenger: float,
    champion: float | None,
    tolerance: float,
    champion_version: str,
    rows: int = 0,
) -> Decision:
    """Not worse (lower is better) within `tolerance`, on the same `rows`; no champion: promote."""
    if champion is None:
        return Decision(True, "no champion yet")
    verdict = (
        f"challenger {metric} {challenger:.4f} vs champion v{champion_version} {champion:.4f} "
        f"(tolerance {tolerance}"
        + (
            f", on {rows:,} rows of the newest fold the champion never learned from)"
            if rows
            else ")"
        )
    )
    if challenger <= champion + tolerance:
        return Decision(True, f"not worse: {verdict}")
    return Decision(False, f"worse: {verdict}")


def refuse(
    test: dict[str, float], ece: float, max_ece: float, where: str, chance: float = 0.0
) -> str:
    """Why a challenger may not be champion whatever the champion scores; "" when it may.

    `test` holds its test-slice metrics; `ece` is the forward test's pooled ECE, or the test
    slice's when no forward test could run (`where` says which); `chance` is the ECE a perfectly
    calibrated model would exceed only 5% of the time on those rows (`metrics.chance_ece`): a
    model is refused only when its ECE is above both, so a few hundred deals cannot fail a
    calibrated model by luck."""
    if not all(np.isfinite(list(test.values()))):  # one class: ROC and PR AUC are NaN
        rate = test.get("positive_rate", float("nan"))
        return (
            f"it cannot be measured: its newest fold ({int(test.get('rows', 0)):,} rows) holds one "
            f"class (win rate {rate:.0%}), so ROC AUC is undefined"
        )
    if not ece <= max(max_ece, chance):
        noise = f" and above {chance:.4f}, what chance alone gives there 5% of the time"
        return (
            f"not calibrated: ECE {ece:.4f} on {where}, above the limit {max_ece} "
            f"(max_forward_ece){noise if chance > 0 else ''}"
        )
    return ""


def set_aliases(client: mlflow.MlflowClient, name: str, version: str, decision: Decision) -> None:
    """Challenger always; champion when promoted. The reason is kept on the version."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "promotion", decision.reason)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)


EXPORT_TAG = "dealscore.trained_on_export"  # the export time a nightly retrain learned from


def trained_on(client: mlflow.MlflowClient, name: str, export: str) -> ModelVersion | None:
    """The version a nightly run already trained on the export of this time, if any: a rerun
    of the same night must not train again."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    done = [v for v in versions if v.tags.get(EXPORT_TAG) == export]
    return max(done, key=lambda v: int(v.version)) if done else None


def registered_at(client: mlflow.MlflowClient, name: str, version: str) -> float | None:
    """When a version was registered (seconds since the epoch); None if it cannot be found."""
    try:
        return client.get_model_version(name, version).creation_timestamp / 1000
    except MlflowException:
        return None
