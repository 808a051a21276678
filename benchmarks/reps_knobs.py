"""The model against the reps, across how the reps read their deals (docs/synthetic.md).

    .venv/bin/python benchmarks/reps_knobs.py [--deals 20000] [--seed 7]

For each setting of the generator's rep knobs: generate a CRM (same seed, so the same deals and
outcomes; only the reps' calls differ), train with the default recipe, and print the Brier score
of the model, the reps' own probability, and the ceiling (P(won within H | hidden state)) on the
newest fold (out of fold) and on the forward test, plus the model's Brier gain over the reps.
Then, for the default reps, the model against the ceiling and the creation-day probability by
deal age.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import pandas as pd

from dealscore.pipeline.training import TrainSettings, fit_and_evaluate, run_forward
from dealscore.synthetic import GeneratorSettings, generate_crm
from dealscore.synthetic.truth import Truth

EXPORT = pd.Timestamp("2026-11-30", tz="UTC")
KNOBS: dict[str, dict[str, float]] = {
    "honest reps (no optimism, no sandbaggers, know the segments)": {
        "rep_optimism": 0.0,
        "rep_sandbagger_share": 0.0,
        "rep_icp_blindness": 0.0,
    },
    "default (optimism 0.9, 15% sandbaggers, blind to segments)": {},
    "heavy sandbagging (no optimism, 60% sandbaggers, blind)": {
        "rep_optimism": 0.0,
        "rep_sandbagger_share": 0.6,
    },
    "noisy honest reps (honest, rep_noise 1.2)": {
        "rep_optimism": 0.0,
        "rep_sandbagger_share": 0.0,
        "rep_icp_blindness": 0.0,
        "rep_noise": 1.2,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    settings = TrainSettings(track=False)
    lines = [
        "| reps | test: model | reps | ceiling | gain over reps | forward: model | reps | gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bands = None
    for name, knobs in KNOBS.items():
        started = time.perf_counter()
        generator = replace(
            GeneratorSettings(deals=args.deals, seed=args.seed, export_date=EXPORT), **knobs
        )
        crm = generate_crm(generator)
        truth = Truth(crm.truth, crm.path, generator)
        result = fit_and_evaluate(crm.tables, settings, truth)
        forward = run_forward(crm.tables, settings)
        overall = result.comparison[result.comparison["segment"] == "all"].set_index("contender")
        model, reps = overall.loc["model", "brier"], overall.loc["rep_forecast", "brier"]
        f_model = forward.pooled("model").get("brier", float("nan"))
        f_reps = forward.pooled("rep_forecast").get("brier", float("nan"))
        lines.append(
            f"| {name} | {model:.3f} | {reps:.3f} | {overall.loc['oracle_ceiling', 'brier']:.3f} "
            f"| {1 - model / reps:.0%} | {f_model:.3f} | {f_reps:.3f} | {1 - f_model / f_reps:.0%} |"
        )
        print(lines[-1], f"({time.perf_counter() - started:.0f} s, H {result.horizon_days:.0f})")
        if not knobs:
            bands = result.comparison
    print("\n".join(lines))
    if bands is not None:
        table = bands[bands["contender"].isin(["model", "oracle_ceiling", "oracle_creation"])]
        print(
            table.pivot(index="segment", columns="contender", values=["rows", "brier", "roc_auc"])
            .round(3)
            .to_string()
        )


if __name__ == "__main__":
    main()
