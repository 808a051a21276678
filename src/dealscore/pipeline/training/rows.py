"""Training rows: the data minimums, grid snapshots of the usable history with features, labels
and time folds, the recent snapshots, and the weights the heroic-win rule sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.extensions import take

from dealscore.errors import DataError
from dealscore.features import FeatureState, build_features, fit_feature_state
from dealscore.features.asof import last_event
from dealscore.features.forecast import REP_INPUTS
from dealscore.features.heroics import heroic_wins
from dealscore.features.pit import DAY, micros, quarter_end_micros
from dealscore.features.snapshots import (
    auto_horizon,
    grid_snapshots,
    history_start,
    quarter_snapshots,
    recent_snapshots,
)
from dealscore.io.icp import load_icp
from dealscore.model.split import TimeFolds, deal_folds, deal_sample, time_folds
from dealscore.pipeline.training.settings import TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities, Status
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID
from dealscore.schemas.keys import positions


class DataMinimumError(DataError):
    """Too little history to train on."""


def check_minimums(
    tables: CrmTables, settings: TrainSettings, start: pd.Timestamp, cutoff: pd.Timestamp
) -> None:
    """Refuse, with the recipe's one-sentence need, an export too small or too short."""
    status = tables.opportunities[Opportunities.status]
    won = int((status == Status.WON).sum())
    not_won = int(status.isin([Status.LOST, Status.NO_DECISION]).sum())
    days = (cutoff - start) / pd.Timedelta(days=1)
    if won < settings.min_won or not_won < settings.min_not_won or days < settings.min_history_days:
        raise DataMinimumError(
            f"too little history to train: {won:,} won and {not_won:,} lost or no-decision "
            f"deals, {days:,.0f} days since {start:%Y-%m-%d}; {settings.needs()} "
            "(min_won, min_not_won, min_history_days)"
        )


def cohort_warning(rows: pd.DataFrame, ratio: float) -> str:
    """A warning when the label rate of the newest fifth of deals (by creation: a cohort)
    differs from the older deals' by more than `ratio` either way: censoring (recent slow
    outcomes missing) or a real shift, worth a look before trusting the model."""
    created = rows["as_of"] - pd.to_timedelta(rows["age_days"], unit="D")
    recent = created >= created.quantile(0.8)
    if recent.all() or not recent.any():
        return ""
    new, old = rows.loc[recent, "label"].mean(), rows.loc[~recent, "label"].mean()
    if min(new, old) > 0 and max(new / old, old / new) <= ratio:
        return ""
    return (
        f"the label rate of the newest fifth of deals ({new:.1%}) differs from the older ones' "
        f"({old:.1%}): recent outcomes may be censored (slow losses not closed yet) or the "
        f"business changed; the forward test shows what it costs"
    )


def _icp_rules(settings: TrainSettings, progress: Progress):
    return load_icp(settings.icp)


@dataclass(frozen=True)
class TrainingRows:
    """Labelled snapshots with features, their time folds, the recent unlabelled snapshots, and
    what was learned or decided to build them."""

    rows: pd.DataFrame  # features, label, label_in_quarter, label_no_decision, days_to_win, ...
    folds: TimeFolds
    state: FeatureState
    start: pd.Timestamp  # where the usable history starts (features/snapshots.history_start)
    cutoff: pd.Timestamp
    horizon: float
    rules: tuple
    recent: pd.DataFrame  # the last horizon's snapshots: features, elapsed_days, won_so_far
    notes: tuple[str, ...] = ()


def _features(tables: CrmTables, keys: pd.DataFrame, state: FeatureState) -> pd.DataFrame:
    features = build_features(tables, keys[[OPPORTUNITY_ID, AS_OF]], state)
    return keys.merge(features, on=[OPPORTUNITY_ID, AS_OF], validate="one_to_one")


def training_rows(
    tables: CrmTables,
    settings: TrainSettings,
    progress: Progress = silent,
    cutoff: pd.Timestamp | None = None,
) -> TrainingRows:
    """Grid snapshots of the usable history (docs/features.md), their features, labels and
    time folds, and the recent snapshots whose windows have not ended. `cutoff`: the time the
    export stands at, when known (a backtest's quarter start); by default just after its last
    dated fact."""
    deals = tables.opportunities
    last = last_event(tables) + pd.Timedelta(microseconds=1)
    if cutoff is not None and cutoff < last:
        raise ValueError(f"cut-off {cutoff} is before the export's last dated fact ({last})")
    cutoff = last if cutoff is None else cutoff
    start = history_start(deals, cutoff)
    check_minimums(tables, settings, start, cutoff)
    rules = _icp_rules(settings, progress)
    horizon, notes = _horizon(deals, settings, start, cutoff)
    for note in notes:
        progress(note)

    progress("sampling snapshots and building features")
    snaps = _snapshots(deals, settings, start, cutoff, horizon)
    # Learned from history before the cut-off: the stage order reads no outcome.
    state = fit_feature_state(tables, cutoff, rules, maturity_days=horizon)
    rows = with_side_labels(_features(tables, snaps, state), deals, cutoff)
    warning = cohort_warning(rows, settings.cohort_warning_ratio)
    if warning:
        progress(f"WARNING: {warning}")
    recent, note = _recent(tables, rows, state, cutoff, horizon, settings)
    if note:
        notes.append(note)
        progress(note)
    if not settings.rep_inputs:
        rows, recent = without_rep_inputs(rows), without_rep_inputs(recent)
    folds, sample = purged_folds(rows, horizon, settings)
    progress(
        f"{len(rows):,} labelled snapshot rows from {rows['as_of'].min():%Y-%m-%d} to "
        f"{rows['as_of'].max():%Y-%m-%d} in {folds.k} time folds (purged by {horizon:g} days)"
        f"{sample}; {len(recent):,} recent rows whose windows have not ended"
    )
    return TrainingRows(rows, folds, state, start, cutoff, horizon, rules, recent, tuple(notes))


def _horizon(
    deals: pd.DataFrame, settings: TrainSettings, start: pd.Timestamp, cutoff: pd.Timestamp
) -> tuple[float, list[str]]:
    """The label horizon, with notes on a late start of the history and a chosen horizon."""
    notes = []
    late = (start - deals[Opportunities.created_at].min()) / pd.Timedelta(days=1)
    if late > 4 * settings.every_days:
        notes.append(
            f"training starts at {start:%Y-%m-%d}, the first date by which the export records "
            f"both a won and a lost deal: the {late:,.0f} days before it, with one outcome "
            "only, are set aside"
        )
    horizon, why = (
        (settings.horizon_days, "") if settings.horizon_days else auto_horizon(deals, cutoff)
    )
    if why:
        notes.append(f"label horizon {horizon:g} days: {why}")
    return horizon, notes


def _snapshots(
    deals: pd.DataFrame,
    settings: TrainSettings,
    start: pd.Timestamp,
    cutoff: pd.Timestamp,
    horizon: float,
) -> pd.DataFrame:
    """The grid snapshots whose label window ended by the cut-off; none is a data minimum."""
    snaps = grid_snapshots(deals, cutoff, settings.snapshots(), horizon, start)
    if snaps.empty:
        raise DataMinimumError(
            f"no snapshot has a complete label window: the history since {start:%Y-%m-%d} is "
            f"shorter than the label horizon of {horizon:g} days (horizon_days); "
            + settings.needs()
        )
    return snaps


def _closes(rows: pd.DataFrame, deals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(won, close time in microseconds) of each row's deal; `deals` as known at the cut-off."""
    # Each row's deal found once (an Arrow lookup), both of its facts read from that position.
    where = positions(rows[OPPORTUNITY_ID], deals[Opportunities.opportunity_id])
    closed = take(deals[Opportunities.closed_at].array, where, allow_fill=True)
    status = take(deals[Opportunities.status].array, where, allow_fill=True)
    won = pd.Series(status).eq(Status.WON.value).fillna(False).to_numpy(dtype=bool)
    return won, micros(pd.Series(closed, index=rows.index))


def with_side_labels(rows: pd.DataFrame, deals: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The snapshot rows with the side models' labels and the days to a win; `deals` as known
    at `cutoff`."""
    won, closed_us = _closes(rows, deals)
    as_of_us = micros(rows["as_of"])
    # Won before the snapshot's quarter ends, however far beyond the label window that is: a
    # short history's window (58 days, say) would teach that a deal open at a quarter's start
    # cannot close in its last month. Known only where that quarter ended by the cut-off (a
    # rule on as_of alone); the won-this-quarter model learns from those rows.
    quarter_end = quarter_end_micros(as_of_us)
    return rows.assign(
        label_in_quarter=_won_before(won, closed_us, quarter_end),
        in_quarter_known=quarter_end <= micros(pd.Series([cutoff]))[0],
        # Not won within the window: lost within it, or no decision (closed as such, or still
        # undecided when the window ends). Only read for rows not won (model/outcomes.py).
        label_no_decision=rows["outcome"].isin([Status.NO_DECISION.value, "open"]).astype(np.int64),
        days_to_win=np.where(rows["label"] == 1, (closed_us - as_of_us) / DAY, np.nan),
    )


def quarter_rows(
    tables: CrmTables,
    prepared: TrainingRows,
    settings: TrainSettings,
    progress: Progress = silent,
) -> pd.DataFrame:
    """The last horizon's grid snapshots whose quarter ended by the cut-off, with features and
    whether each deal was won in that quarter (`quarter_snapshots`): the months a short
    history's labelled rows never reach, for the won-this-quarter model only (their win labels
    are not known yet). Empty when that model is off."""
    if not settings.in_quarter_model:
        return pd.DataFrame()
    snaps = quarter_snapshots(
        tables.opportunities, prepared.cutoff, settings.snapshots(), prepared.horizon
    )
    if snaps.empty:
        return pd.DataFrame()
    rows = _features(tables, snaps, prepared.state)
    rows = rows.assign(label_in_quarter=won_in_quarter(rows, tables.opportunities))
    progress(
        f"{len(rows):,} rows of the last horizon's finished quarter for the won-this-quarter model"
    )
    return rows if settings.rep_inputs else without_rep_inputs(rows)


def won_in_quarter(rows: pd.DataFrame, deals: pd.DataFrame) -> np.ndarray:
    """Whether each row's deal was won before its snapshot's calendar quarter ended (1/0);
    `deals` as known at a cut-off that quarter's end does not pass."""
    won, closed_us = _closes(rows, deals)
    return _won_before(won, closed_us, quarter_end_micros(micros(rows["as_of"])))


def _won_before(won: np.ndarray, closed_us: np.ndarray, quarter_end: np.ndarray) -> np.ndarray:
    """The won-this-quarter label (1/0): won, and closed before the quarter's end."""
    return (won & (closed_us < quarter_end)).astype(np.int64)


def _recent(
    tables: CrmTables,
    rows: pd.DataFrame,
    state: FeatureState,
    cutoff: pd.Timestamp,
    horizon: float,
    settings: TrainSettings,
) -> tuple[pd.DataFrame, str]:
    """The last horizon's snapshots with features for the recent correction, or none and why."""
    labelled_days = (rows["as_of"].max() - rows["as_of"].min()) / pd.Timedelta(days=1)
    if settings.recent_correction and labelled_days >= settings.recent_min_history_days:
        snaps = recent_snapshots(tables.opportunities, cutoff, horizon, settings.seed)
        return _features(tables, snaps, state), ""
    if settings.recent_correction:
        return pd.DataFrame(), (
            f"no recent correction: {labelled_days:,.0f} days of labelled snapshots cannot tell "
            f"a change of the win rate from the season (recent_min_history_days "
            f"{settings.recent_min_history_days:g})"
        )
    return pd.DataFrame(), ""


def purged_folds(
    rows: pd.DataFrame, horizon: float, settings: TrainSettings, by_deal: bool = False
) -> tuple[TimeFolds, str]:
    """The purged time folds (blocks of whole deals with `by_deal`: model/split.py), on a
    sample of whole deals above crossfit_max_rows (and so said)."""
    folds = (
        deal_folds(rows[OPPORTUNITY_ID], rows["as_of"], horizon, settings.folds, settings.seed)
        if by_deal
        else time_folds(rows["as_of"], horizon, settings.folds)
    )
    if len(rows) <= settings.crossfit_max_rows:
        return folds, ""
    keep = deal_sample(rows[OPPORTUNITY_ID], settings.crossfit_max_rows, settings.seed)
    return folds.sample(keep), (
        f" (cross-fitted on a random {int(keep.sum()):,} of them, whole deals: "
        "crossfit_max_rows; refitted on all)"
    )


def without_rep_inputs(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with the reps' inputs blanked: a feature missing on every training row never
    makes a split, so the model cannot use it, whatever scoring later passes in."""
    if rows.empty:
        return rows
    return rows.assign(**{name: np.nan for name in sorted(REP_INPUTS)})


def heroic_ids(tables: CrmTables, prepared: TrainingRows, settings: TrainSettings) -> pd.Series:
    """The ids of the deals the heroic-win rule flags."""
    deals = tables.opportunities
    flagged = heroic_wins(tables, prepared.rules, settings.heroics())
    return deals.loc[flagged, Opportunities.opportunity_id]


def heroic_weights(rows: pd.DataFrame, flagged: pd.Series, settings: TrainSettings) -> np.ndarray:
    """Each row's weight, times heroic_weight for the rows of the flagged deals."""
    if rows.empty:
        return np.empty(0)
    is_heroic = rows[OPPORTUNITY_ID].isin(flagged).to_numpy()
    return rows["weight"].to_numpy() * np.where(is_heroic, settings.heroic_weight, 1.0)
