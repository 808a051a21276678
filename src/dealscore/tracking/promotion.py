"""Whether a challenger becomes the champion: the gates of the forward test, the champion scored
on the newest fold's rows it never learned from, the registered version and its aliases."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd

from dealscore.features import build_features
from dealscore.model.metrics import chance_ece, evaluate
from dealscore.pipeline.training import TrainResult, TrainSettings
from dealscore.schemas import CrmTables
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID
from dealscore.schemas.tables import coverage_change
from dealscore.tracking.models import load_model
from dealscore.tracking.pyfunc import DIGEST_TAG
from dealscore.tracking.registry import Decision, current_champion, decide, refuse, set_aliases

MIN_COMPARED_ROWS = 200  # rows of the newest fold the champion never learned from


@dataclass(frozen=True)
class ChampionCheck:
    """The champion against the challenger, on the newest fold's rows the champion never
    learned from (it was refitted on every labelled row of its own export)."""

    version: str | None = None
    champion: float | None = None  # its promotion metric on those rows
    challenger: float | None = None  # the challenger's, out of fold, on the same rows
    rows: int = 0
    problem: str = ""  # why the challenger may not replace it: another CRM's, or it fails


def champion_check(
    client: mlflow.MlflowClient,
    name: str,
    settings: TrainSettings,
    tables: CrmTables,
    coverage: tuple[str, ...],
    result: TrainResult,
) -> ChampionCheck:
    """The champion's score and the challenger's on the same rows, with the champion's own
    fitted feature state, or why it may not be compared: another CRM's model (other columns
    filled), or one that fails."""
    champion = current_champion(client, name)
    if champion is None:
        return ChampionCheck()
    version = champion.version
    try:  # checked against its digest like any registered model, before any of it runs
        bundle = load_model(f"models:/{name}/{version}", mlflow.get_tracking_uri()).bundle
    except Exception as exc:
        return ChampionCheck(version, problem=f"champion v{version} could not be loaded: {exc}")
    change = coverage_change(bundle.coverage, coverage)
    if change and not settings.allow_coverage_change:
        why = (
            f"{change.replace('the model', f'champion v{version}', 1)}: another CRM's "
            "export? Give it its own registered_model, or set allow_coverage_change "
            "(--allow-coverage-change) if this CRM's export really changed"
        )
        return ChampionCheck(version, problem=why)
    # Its labelled rows were those whose window ended by its cut-off: judge it on the others.
    test = result.test
    learned_until = bundle.feature_state.fitted_before
    unseen = np.ones(len(test), dtype=bool)
    if learned_until is not None:
        window = pd.Timedelta(days=bundle.horizon_days or 0.0)
        unseen = (test["as_of"] + window > learned_until).to_numpy()
    if unseen.sum() < MIN_COMPARED_ROWS:
        return ChampionCheck(version, rows=int(unseen.sum()))
    try:
        keys = test.loc[unseen, [OPPORTUNITY_ID, AS_OF]]
        rows = keys.merge(
            build_features(tables, keys, bundle.feature_state), on=[OPPORTUNITY_ID, AS_OF]
        )
        p = bundle.predict(rows)
    except Exception as exc:
        return ChampionCheck(version, problem=f"champion v{version} could not score: {exc}")
    y = test.loc[unseen, "label"].to_numpy()
    metric = settings.promotion_metric
    return ChampionCheck(
        version,
        evaluate(y, p)[metric],
        evaluate(y, result.predictions["model"][unseen])[metric],
        int(unseen.sum()),
    )


def gate(result: TrainResult, settings: TrainSettings) -> tuple[dict[str, float], str]:
    """(the newest fold's metrics, why the challenger may never be champion: "" when it may)."""
    measured = evaluate(result.test["label"].to_numpy(), result.predictions["model"])
    if result.forward is not None:
        ece, where = result.forward.pooled()["ece"], "the forward test"
        chance = chance_ece(result.forward.rows["model"].to_numpy())
    else:
        ece, where = measured["ece"], "the newest fold (no forward test ran)"
        chance = chance_ece(result.predictions["model"])
    mlflow.log_metric("gate.chance_ece", chance)
    refusals = [refuse(measured, ece, settings.max_forward_ece, where, chance)]
    if result.forward is not None:
        refusals.append(
            result.forward.worse_than_simpler(
                result.model.rung, settings.promotion_metric, settings.promotion_tolerance
            )
        )
    return measured, "; ".join(r for r in refusals if r)


def register_and_gate(
    client: mlflow.MlflowClient,
    model_uri: str,
    name: str,
    result: TrainResult,
    tables: CrmTables,
    coverage: tuple[str, ...],
    settings: TrainSettings,
    source: str,
    digest: str,
) -> tuple[str, Decision]:
    """Register a new version under the CRM's name (with the digest of its files), decide
    champion or challenger, set the aliases and record why, in the active run."""
    # MLflow prints "Successfully registered" itself; the CLI says it once, after the gate.
    with contextlib.redirect_stderr(io.StringIO()):
        version = str(mlflow.register_model(model_uri, name, tags={DIGEST_TAG: digest}).version)
    client.set_model_version_tag(name, version, "dealscore.data", source)
    _, refusal = gate(result, settings)
    check = champion_check(client, name, settings, tables, coverage, result)
    decision = _decision(check, refusal, settings)
    set_aliases(client, name, version, decision)
    mlflow.set_tags(
        {
            "dealscore.model_version": version,
            "dealscore.promoted": str(decision.promote).lower(),
            "dealscore.promotion_reason": decision.reason,
        }
    )
    if check.champion is not None and check.challenger is not None:
        mlflow.log_metrics(
            {
                f"champion.{settings.promotion_metric}": check.champion,
                f"challenger.{settings.promotion_metric}": check.challenger,
                "champion.compared_rows": check.rows,
            }
        )
    return version, decision


def _decision(check: ChampionCheck, refusal: str, settings: TrainSettings) -> Decision:
    """Champion or challenger, and why: the comparison with the champion unless it cannot be
    made fairly; a problem with the champion or a refusing gate keeps the challenger out."""
    if check.version and check.champion is None and not check.problem:
        decision = Decision(
            True,
            f"champion v{check.version} learned from the newest fold's rows (only {check.rows:,} "
            f"it never saw, fewer than {MIN_COMPARED_ROWS}), so the two cannot be compared "
            "fairly on them: promoted on the forward test's gates",
        )
    else:
        decision = decide(
            settings.promotion_metric,
            check.challenger if check.challenger is not None else float("nan"),
            check.champion,
            settings.promotion_tolerance,
            check.version or "",
            check.rows,
        )
    if check.problem:
        decision = Decision(False, f"not promoted: {check.problem}")
    if refusal:
        decision = Decision(False, f"not promoted: {refusal}")
    return decision
