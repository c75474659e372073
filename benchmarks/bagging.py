"""What retraining the final model's members several times, each with its own seed, adds on held-out rows.

For each table the held-out rows are split off as in ``benchmarks.quality`` and a job runs with the
defaults and only ``time_budget_s``. Then the final model is built from that search once per value of
``--retrainings`` (the job option), without a deadline so that every retraining runs, and each is
scored on the held-out rows through the serving code (classifiers: accuracy and log loss), beside
default HistGradientBoosting on the same rows. The final step's seconds are printed too.

    .venv/bin/python -m benchmarks.bagging --datasets airquality,anorexia [--budget 60] [--retrainings 1,4]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from benchmarks._harness import Workspace, holdout_split, per_table, score
from benchmarks._tables import Table
from benchmarks.quality import gbdt_peer

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def held_out(workspace: Workspace, table: Table, budget: int, counts: list[int]) -> dict[str, Any]:
    """A job on ``table``'s rows, then its final model with each number of retrainings, scored held out."""
    from automl.search import runner
    from automl.search.local import run_local_search

    fit, held = holdout_split(table.frame(), table.target, table.task)
    spec = workspace.job(fit, table.name, target=table.target, time_budget_s=budget)
    run_local_search(spec)
    spec = replace(spec, deadline=None)
    row: dict[str, Any] = {"dataset": table.name, "metric": table.metric, "rows": len(fit)}
    for count in counts:
        started = time.monotonic()
        trained = runner.train_final_model(replace(spec, retrainings=count))
        seconds = time.monotonic() - started
        predicted, probabilities, classes = workspace.predict_held_out(trained, spec, f"{table.name}-{count}", held)
        row[f"retrainings_{count}"] = score(table.metric, table.task, held[table.target], predicted, probabilities,
                                            classes)
        if probabilities is not None:
            row[f"log_loss_{count}"] = score("log_loss", table.task, held[table.target], predicted, probabilities,
                                             classes)
        row[f"seconds_{count}"] = round(seconds, 1)
        row[f"members_{count}"] = [m.retrainings for m in trained.members]
    row["gbdt"] = gbdt_peer(table, fit, held)["score"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", required=True)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--retrainings", default="1,4", help="retrainings per member to compare")
    parser.add_argument("--out", type=Path, default=RESULTS / f"bagging-{time.strftime('%Y%m%d-%H%M')}.json")
    args = parser.parse_args()
    counts = [int(c) for c in args.retrainings.split(",")]
    rows = per_table(args.datasets.split(","),
                     lambda workspace, table: held_out(workspace, table, args.budget, counts), args.out)
    base, top = f"retrainings_{counts[0]}", f"retrainings_{counts[-1]}"
    diffs = np.array([r[top] - r[base] for r in rows])
    print(f"{top} against {base}: mean {diffs.mean():+.4f}, better on {(diffs > 1e-9).sum()}, worse on "
          f"{(diffs < -1e-9).sum()} of {len(rows)}; worst {diffs.min():+.4f}")


if __name__ == "__main__":
    main()
