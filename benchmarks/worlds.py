"""The training recipe judged forward on generated worlds of different size and length.

    .venv/bin/python benchmarks/worlds.py [--worlds 1500/9mo 4000/18mo 20000/3y 200000/3y]
                                          [--set recent_correction=false ...]

For each world: generate it (seeded; the knobs are the generator's defaults, not tuned to any
figure here), train on the whole export as `dealscore train --no-track` does, then run the
forward test at its 3 default dates (a model trained only on the export as it stood at each date
scores the deals open then; outcomes read later). Prints, per date and pooled: the model's ROC
AUC, ECE (and the ECE a perfectly calibrated model would show there by chance, 95th percentile),
mean predicted against won, and the best simpler rung's ROC AUC; then the rung the recipe chose
and the time taken. docs/training.md quotes these tables.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from dealscore.model.estimator import RUNGS
from dealscore.model.metrics import chance_ece
from dealscore.pipeline.forward import POOLED
from dealscore.pipeline.training import TrainSettings, fit_and_evaluate, run_forward
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-11-30", tz="UTC")
# name -> (deals, years of history, seed)
WORLDS: dict[str, tuple[int, float, int]] = {
    "1500/9mo": (1_500, 0.75, 3),
    "4000/18mo": (4_000, 1.5, 5),
    "20000/3y": (20_000, 3.0, 7),
    "200000/3y": (200_000, 3.0, 11),
}


def _setting(text: str) -> tuple[str, object]:
    """KEY=VALUE as a setting: true/false, a number, else the text."""
    key, _, value = text.partition("=")
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    try:
        return key, float(value) if "." in value else int(value)
    except ValueError:
        return key, value


def judge(name: str, settings: TrainSettings) -> pd.DataFrame:
    deals, years, seed = WORLDS[name]
    started = time.perf_counter()
    tables = generate_crm(
        GeneratorSettings(deals=deals, years=years, seed=seed, export_date=EXPORT)
    ).tables
    result = fit_and_evaluate(tables, settings)
    forward = run_forward(tables, settings)
    seconds = time.perf_counter() - started
    rows = forward.rows
    records = []
    groups = [(f"{d:%Y-%m-%d}", part) for d, part in rows.groupby("as_of")] + [(POOLED, rows)]
    table = forward.table.set_index(["date", "contender"])
    for date, part in groups:
        model = table.loc[(date, "model")]
        rung = forward.rungs.get(date, result.ladder.chosen)
        simpler = [r for r in RUNGS[: RUNGS.index(rung)] if (date, r) in table.index]
        best_simpler = max((table.loc[(date, r), "roc_auc"] for r in simpler), default=np.nan)
        records.append(
            {
                "world": name,
                "date": date,
                "deals": int(model["rows"]),
                "rung": rung if date != POOLED else result.ladder.chosen,
                "roc_auc": model["roc_auc"],
                "best_simpler_auc": best_simpler,
                "ece": model["ece"],
                "chance_ece": chance_ece(part["model"].to_numpy()),
                "mean_predicted": model["mean_predicted"],
                "won": model["actual"],
                "off_by": model["mean_predicted"] / model["actual"] - 1,
            }
        )
    print(
        f"{name}: horizon {result.horizon_days:g} days, labelled rows "
        f"{len(result.model.oof_):,} (cross-fitted {sum(result.fold_rows.values()):,}), rung "
        f"{result.ladder.chosen} ({result.ladder.reason}), recent shift "
        f"{result.model.shift_:+.3f}; {seconds:.0f} s",
        flush=True,
    )
    return pd.DataFrame(records)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="training settings to change"
    )
    args = parser.parse_args()
    settings = replace(TrainSettings(icp="", track=False), **dict(map(_setting, args.set)))
    frames = []
    for name in args.worlds:
        frames.append(judge(name, settings))
        print(frames[-1].round(3).to_string(index=False), flush=True)
    if len(frames) > 1:
        print(pd.concat(frames).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
