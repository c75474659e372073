"""What fine-tuning the best trial over every row gives, by number of passes, against retraining it.

Where a member's retraining on every row does not fit the time left, the final step trains its trial's
weights on over every row instead (``automl.search.runner._fine_tune``), for as many passes as fit, up
to ``runner.FINE_TUNE_PASSES``. For each table the held-out rows are split off as in
``benchmarks.quality`` and a job runs with the defaults and only ``time_budget_s``. Then the best
trial's final model (``ensemble_size`` 1, ``retrainings`` 1) is built several ways from that one
search: its trial's weights as they are, retrained on every row, and fine-tuned for each number of
``--passes`` (no retraining is allowed to fit, and the deadline is far enough for every pass). Each is
scored on the held-out rows through the serving code, beside default HistGradientBoosting; each
fine-tune also averaged with the trial's weights in equal shares (``_beside_trial``), as a retrained
member is served.

    .venv/bin/python -m benchmarks.fine_tune --datasets star,wages,computers [--budget 60] [--passes 10,20,40,80]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks._harness import Workspace, holdout_split, per_table, score, score_blend
from benchmarks._tables import Table
from benchmarks.quality import gbdt_peer

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def held_out(workspace: Workspace, table: Table, budget: int, counts: list[int]) -> dict[str, Any]:
    """A job on ``table``'s rows, then its best trial's final model built each way, scored held out."""
    from automl.search import runner
    from automl.search.local import run_local_search

    fit, held = holdout_split(table.frame(), table.target, table.task)
    spec = workspace.job(fit, table.name, target=table.target, time_budget_s=budget)
    run_local_search(spec)
    spec = replace(spec, ensemble_size=1, retrainings=1)
    row: dict[str, Any] = {"dataset": table.name, "metric": table.metric, "rows": len(fit)}
    outputs: dict[str, tuple[Any, Any, Any]] = {}

    def scored(label: str, **changes: Any) -> None:
        started = time.monotonic()
        trained = runner.train_final_model(replace(spec, **changes))
        row[f"seconds_{label}"] = round(time.monotonic() - started, 1)
        outputs[label] = workspace.predict_held_out(trained, spec, f"{table.name}-{label}", held)
        row[label] = score(table.metric, table.task, held[table.target], *outputs[label])
        row[f"passes_{label}"] = trained.members[0].fine_tune_passes

    scored("trial_weights", refit=False, deadline=None)
    scored("retrained", deadline=None)
    estimate, most = runner._fit_estimate, runner.FINE_TUNE_PASSES
    try:
        runner._fit_estimate = lambda *args: math.inf  # no retraining fits: the fine-tune runs instead
        for count in counts:
            runner.FINE_TUNE_PASSES = count
            scored(f"fine_tune_{count}", deadline=datetime.now(UTC) + timedelta(hours=1))
    finally:
        runner._fit_estimate, runner.FINE_TUNE_PASSES = estimate, most

    def held_output(label: str) -> Any:  # what a blend averages: predictions, or a classifier's probabilities
        predicted, probabilities, _ = outputs[label]
        return predicted if probabilities is None else probabilities

    for count in counts:  # each fine-tune served beside its trial's weights, in equal shares
        halves = [(0.5, held_output("trial_weights")), (0.5, held_output(f"fine_tune_{count}"))]
        row[f"fine_tune_{count}_beside_trial"] = score_blend(table.metric, table.task, held[table.target], halves,
                                                             outputs["trial_weights"][2])
    row["gbdt"] = gbdt_peer(table, fit, held)["score"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", required=True)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--passes", default="10,20,40,80", help="fine-tune passes to compare")
    parser.add_argument("--out", type=Path, default=RESULTS / f"fine-tune-{time.strftime('%Y%m%d-%H%M')}.json")
    args = parser.parse_args()
    counts = [int(c) for c in args.passes.split(",")]
    per_table(args.datasets.split(","), lambda workspace, table: held_out(workspace, table, args.budget, counts),
              args.out)

if __name__ == "__main__":
    main()
