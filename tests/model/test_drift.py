"""Population stability index against the training reference."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from dealscore.model.drift import (
    MISSING,
    SEGMENT,
    Reference,
    assess,
    bin_counts,
    category_counts,
    chance_threshold,
    population_stability,
    reference,
    shift_since_previous,
)


def frame(rng: np.random.Generator, shift: float = 0.0, missing: float = 0.0) -> pd.DataFrame:
    values = rng.normal(shift, 1.0, 20_000)
    values[rng.random(20_000) < missing] = np.nan
    return pd.DataFrame({"x": values, "flag": (rng.random(20_000) < 0.3).astype(float)})


def test_same_population_is_stable_a_shift_is_not():
    rng = np.random.default_rng(1)
    ref = reference(frame(rng), ["x", "flag"])
    same = population_stability(ref, frame(rng))
    moved = population_stability(ref, frame(rng, shift=0.8))
    assert (same < 0.01).all()
    assert moved["x"] > 0.2 and moved["flag"] < 0.01


def test_missing_values_are_a_bin_of_their_own():
    rng = np.random.default_rng(2)
    ref = reference(frame(rng), ["x"])
    assert population_stability(ref, frame(rng, missing=0.3))["x"] > 0.2


def test_scores_are_compared_with_the_previous_run_on_the_deals_scored_both_times():
    # given last week's scores and this week's: the same deals moved a little, a few new ones
    rng = np.random.default_rng(3)
    before = rng.beta(2, 3, 2_000)
    week_on = np.clip(before + rng.normal(0, 0.03, 2_000), 0, 1)
    previous = np.where(rng.random(2_000) < 0.1, np.nan, before)  # new deals: no previous
    # then a week of ordinary movement is quiet, and a model that halves every score is not
    assert shift_since_previous(week_on, previous) < 0.05
    assert shift_since_previous(week_on / 2, previous) > 0.2
    # and with too few deals scored both times there is nothing to say
    assert shift_since_previous(week_on[:40], previous[:40]) is None


def pipeline(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """n open deals: five numeric inputs of one distribution (the first shifted by `shift`)."""
    return pd.DataFrame(
        {f"x{i}": rng.gamma(2.0, 30.0, n) * (1 + (shift if i == 0 else 0.0)) for i in range(5)}
    )


def warnings_for(ref: Reference, now: pd.DataFrame, segments: pd.DataFrame | None = None):
    counts = bin_counts(ref, now)
    return assess(ref, counts, category_counts(segments) if segments is not None else {}, 0.2)


def test_a_small_pipeline_from_the_same_distribution_does_not_warn():
    # given a 60-deal org, twenty times: its pipeline at training and 60 deals now, five inputs
    # each, all from the same distribution
    rng = np.random.default_rng(4)
    runs = []
    for _ in range(20):
        ref = reference(pipeline(rng, 60), [f"x{i}" for i in range(5)])
        runs.append(warnings_for(ref, pipeline(rng, 60)))
    # then PSI alone would cry wolf: chance puts many inputs above 0.2
    psi = pd.concat([p for p, _ in runs])
    assert (psi > 0.2).mean() > 0.2 and psi.max() > 0.5, psi.describe()
    # but nothing is warned: chance allows more than that for so few deals
    assert [w for _, w in runs] == [()] * 20
    assert chance_threshold(10, 60, 60, tests=5) > 1.0


def test_a_real_shift_of_a_large_pipeline_warns_and_says_where_the_deals_went():
    # given 5,000 deals at training and 5,000 now whose first input is 50% larger
    rng = np.random.default_rng(5)
    ref = reference(pipeline(rng, 5_000), [f"x{i}" for i in range(5)])
    psi, warnings = warnings_for(ref, pipeline(rng, 5_000, shift=0.5))
    # then only that input is warned about, in shares of deals against a bin of training's
    assert psi["x0"] > 0.2 and (psi.drop("x0") < 0.01).all()
    (sentence,) = warnings
    assert sentence.startswith("x0 is ") and "of open deals" in sentence, sentence
    assert "10% at training" in sentence and sentence.endswith("above psi_warning 0.2).")
    # and on so many deals chance allows far less than psi_warning
    assert chance_threshold(10, 5_000, 5_000, tests=5) < 0.05


def test_a_new_segment_value_is_named_with_its_shares():
    # given lead sources at training: web 50%, referral 30%, event 20% (1,000 open deals)
    sources = np.array(["web"] * 500 + ["referral"] * 300 + ["event"] * 200, dtype=object)
    frame = pd.DataFrame({"x": np.arange(1_000.0)})
    ref = reference(frame, ["x"], segments=pd.DataFrame({"lead_source": sources}))
    assert ref.rows == 1_000 and ref.categories["lead_source"]["web"] == 0.5
    # when 40% of the 500 deals open now came from a source never seen, and 2% have none
    now = np.array(["podcast"] * 200 + ["web"] * 150 + ["referral"] * 140 + [None] * 10)
    segments = pd.DataFrame({"lead_source": pd.array(now, dtype="string")})
    psi, warnings = warnings_for(ref, pd.DataFrame({"x": np.arange(0, 1_000.0, 2)}), segments)
    # then the segment's PSI is in the series, and its warning names the value and both shares
    assert psi[SEGMENT + "lead_source"] > 1.0
    assert warnings == (
        f"lead_source 'podcast' is on 40% of open deals, 0% at training (PSI "
        f"{psi[SEGMENT + 'lead_source']:.2f}, above psi_warning 0.2).",
    )
    # and counts of parts add up (the Spark engine sums them over groups)
    halves = [category_counts(segments.iloc[:250]), category_counts(segments.iloc[250:])]
    whole = category_counts(segments)["lead_source"]
    assert {
        v: halves[0]["lead_source"].get(v, 0) + halves[1]["lead_source"].get(v, 0) for v in whole
    } == whole
    assert whole[MISSING] == 10


def test_inputs_that_move_with_time_alone_are_logged_but_not_warned():
    # given a learned segment win rate, a growing count and the rep's call at training
    rng = np.random.default_rng(6)
    n = 2_000
    then = pd.DataFrame(
        {
            "win_rate_industry": rng.choice([0.2, 0.3, 0.4], n),
            "owner_past_deals": rng.integers(0, 50, n).astype(float),
            "rep_probability": np.where(rng.random(n) < 0.01, np.nan, rng.random(n)),
        }
    )
    ref = reference(then, list(then.columns))
    # when a year on the rates were recomputed, the counts grew, and it is the day before the
    # weekly calls: 16% of the deals have none yet
    now = pd.DataFrame(
        {
            "win_rate_industry": rng.choice([0.27, 0.37, 0.45], n),
            "owner_past_deals": rng.integers(40, 90, n).astype(float),
            "rep_probability": np.where(rng.random(n) < 0.16, np.nan, rng.random(n)),
        }
    )
    psi, warnings = warnings_for(ref, now)
    # then all three moved in the PSI series, and none is a warning
    assert (psi > 0.2).all(), psi
    assert warnings == ()
    # but reps who stopped calling are a change
    moved, stopped = warnings_for(ref, now.assign(rep_probability=np.nan))
    assert stopped == (
        "rep_probability is missing on 100% of open deals, 1% at training "
        f"(PSI {moved['rep_probability']:.2f}, above psi_warning 0.2).",
    )


def test_a_reference_saved_before_sizes_and_segments_were_kept_still_works():
    # given a reference unpickled from an old bundle: edges and shares only
    rng = np.random.default_rng(7)
    new = reference(pipeline(rng, 2_000), ["x0"])
    old = pickle.loads(pickle.dumps(new))
    object.__setattr__(old, "__dict__", {"edges": new.edges, "shares": new.shares})
    # when today's deals are compared with it, segments and all
    segments = pd.DataFrame({"industry": ["retail"] * 2_000})
    psi, warnings = warnings_for(old, pipeline(rng, 2_000, shift=0.5), segments)
    # then the inputs are compared as before (no segments to compare with) and still warned
    assert list(psi.index) == ["x0"] and psi["x0"] > 0.2
    assert len(warnings) == 1 and warnings[0].startswith("x0 is ")
