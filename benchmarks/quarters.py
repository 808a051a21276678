"""The quarter's number replayed through the quarter on generated worlds with different reps.

    .venv/bin/python benchmarks/quarters.py [--worlds demo honest sandbagging] [--periods 6]

For each world (seeded; the reps' knobs are set, nothing else is tuned): generate it, run
`backtest` over its last closed quarters at weeks 0, 2, ... 12 (a model per quarter trained only
on the history before it), and print per week the model's and the reps' rollups' accuracy
(forecast / actual), bias (with the model's standard error over the quarters) and absolute error,
over every replayed quarter and over the last 4;
then the reliability of the won-this-quarter probability per week of the quarter (mean
predicted against won, ECE and the ECE a calibrated model shows there by chance).
docs/forecast.md quotes these tables.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import pandas as pd

from dealscore.model.metrics import chance_ece, expected_calibration_error
from dealscore.pipeline.periods import BacktestResult, backtest
from dealscore.pipeline.training import TrainSettings
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-11-30", tz="UTC")
# name -> (deals, years, seed, the reps' knobs)
WORLDS: dict[str, tuple[int, float, int, dict[str, float]]] = {
    "demo": (20_000, 3.0, 7, {}),
    "honest": (
        8_000,
        2.5,
        21,
        {"rep_optimism": 0.0, "rep_sandbagger_share": 0.0, "rep_icp_blindness": 0.0},
    ),
    "sandbagging": (8_000, 2.5, 22, {"rep_optimism": 0.0, "rep_sandbagger_share": 0.6}),
}
FORECASTS = ("model", "rep_commit", "rep_commit_best_case")


def accuracy(result: BacktestResult, last: int = 0) -> pd.DataFrame:
    """Per week: each forecast's bias and absolute error (as shares of the actual), and how
    often the actual fell in the model's range; over the last `last` quarters (0: all)."""
    wide = result.wide()
    if last:
        wide = wide[wide["period"].isin(sorted(wide["period"].unique())[-last:])]
    columns = {}
    for forecast in FORECASTS:
        error = (wide[forecast] / wide["actual"] - 1).groupby(wide["week"])
        columns[f"{forecast} bias"] = error.mean()
        if forecast == "model":
            # How far the mean of a handful of quarters moves by chance: a bias within about
            # one standard error of zero is not told apart from none by these quarters.
            columns["model bias se"] = error.sem()
        columns[f"{forecast} abs"] = error.apply(lambda e: e.abs().mean())
    inside = (wide["actual"] >= wide["model_low"]) & (wide["actual"] <= wide["model_high"])
    columns["in range"] = inside.groupby(wide["week"]).sum()
    columns["quarters"] = wide.groupby("week").size()
    return pd.DataFrame(columns)


def reliability(result: BacktestResult) -> pd.DataFrame:
    rows = []
    for week, deals in result.deals.groupby("week"):
        won = deals["won_in_period"].to_numpy().astype(int)
        p = deals["p_win_in_period"].to_numpy()
        rows.append(
            {
                "week": week,
                "deal-dates": len(deals),
                "mean p": p.mean(),
                "won": won.mean(),
                "ECE": expected_calibration_error(won, p),
                "chance ECE": chance_ece(p),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--periods", type=int, default=6)
    args = parser.parse_args()
    for name in args.worlds:
        deals, years, seed, knobs = WORLDS[name]
        started = time.perf_counter()
        generator = replace(
            GeneratorSettings(deals=deals, years=years, seed=seed, export_date=EXPORT), **knobs
        )
        result = backtest(generate_crm(generator).tables, args.periods, TrainSettings(track=False))
        seconds = time.perf_counter() - started
        print(f"\n## {name}: {deals:,} deals over {years:g} years, reps {knobs or 'default'}")
        for why in result.skipped.items():
            print("skipped:", *why)
        print(f"every replayed quarter ({seconds:.0f} s):")
        print(accuracy(result).round(3).to_string())
        print("the last 4 quarters:")
        print(accuracy(result, last=4).round(3).to_string())
        print("reliability of P(won before the quarter ends) per week of the quarter:")
        print(reliability(result).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
