"""How the final model is chosen from a search's trials, scored on held-out rows: on small tables,
where a job's validation split holds 7-90 rows.

For each table the held-out rows are split off as in ``benchmarks.quality`` and a job runs with the
defaults and only ``time_budget_s``. Then every completed trial's own weights are scored alone on the
held-out rows through the serving code, next to the validation outputs the trial kept; from those,
each way of choosing is scored on the same held-out rows, before any refit (the refit retrains
whatever was chosen, so it is left out to compare the choices alone):

- ``selection``: greedy ensemble selection on the validation rows, kept only when it beats the best
  single trial there (the rule before the shrinkage);
- ``shrunk``: the service's rule, the selection shrunk towards an equal blend of the two best trials
  by ``automl.search.ensemble.prior_share`` (``ensemble.shrink``);
- ``best``: the best trial alone; ``top2``, ``top3``: equal blends of the two and three best;
- ``oracle``: the trial best on the held-out rows (what no rule can know).

    .venv/bin/python -m benchmarks.selection --datasets airquality,survey [--budget 60] [--out FILE]
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

from benchmarks._harness import Workspace, holdout_split, per_table, score_blend
from benchmarks._tables import Table

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def trial_outputs(workspace: Workspace, table: Table, budget: int) -> dict[str, Any]:
    """A job on ``table``'s rows; each ranked trial's kept validation outputs and held-out outputs."""
    from automl.search import tuners
    from automl.search.data import prepare
    from automl.search.local import run_local_search
    from automl.search.reporter import NullReporter
    from automl.search.runner import build_tuner, train_final_model

    fit, held = holdout_split(table.frame(), table.target, table.task)
    spec = workspace.job(fit, table.name, target=table.target, time_budget_s=budget)
    run_local_search(spec)
    spec = replace(spec, deadline=None)
    data = prepare(spec)
    tuner = build_tuner(spec, data, NullReporter())
    trials = []
    for trial in tuners.ranked(tuner.oracle, spec.task):
        alone = train_final_model(spec, trial_id=trial.trial_id)
        predicted, probabilities, classes = workspace.predict_held_out(alone, spec, f"{table.name}-{trial.trial_id}",
                                                                       held)
        trials.append({"id": trial.trial_id, "validation_score": float(trial.score),
                       "validation": tuners.validation_predictions(tuner, trial.trial_id),
                       "held": np.asarray(predicted, dtype="float64") if probabilities is None else probabilities,
                       "classes": classes})
    return {"task": spec.task, "objective": spec.objective, "ensemble_size": spec.ensemble_size,
            "y_val": data.y_val, "held_y": held[table.target].to_numpy(), "trials": trials}


def choices(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each rule's weights (trial id -> weight) over ``run``'s trials."""
    from automl.search import ensemble

    ranked = [t["id"] for t in run["trials"]]
    predictions = {t["id"]: np.asarray(t["validation"], dtype="float64")
                   for t in run["trials"][: run["ensemble_size"] * ensemble.CANDIDATES_PER_MEMBER]
                   if t["validation"] is not None}
    selected = shrunk = {ranked[0]: 1.0}
    if len(predictions) >= 2:  # the service's own choice (automl.search.runner._select)
        choice = ensemble.choose(predictions, run["y_val"], run["objective"], run["task"], run["ensemble_size"])
        selected, shrunk = choice.selection.weights if choice.kept else selected, choice.weights
    return {"selection": selected, "shrunk": shrunk,
            "best": {ranked[0]: 1.0}, "top2": {i: 1 / len(ranked[:2]) for i in ranked[:2]},
            "top3": {i: 1 / len(ranked[:3]) for i in ranked[:3]}}


def held_out_score(table: Table, run: dict[str, Any], weights: dict[str, float]) -> float:
    outputs = {t["id"]: t for t in run["trials"]}
    return score_blend(table.metric, table.task, run["held_y"], [(w, outputs[i]["held"]) for i, w in weights.items()],
                       run["trials"][0]["classes"])


def evaluate(table: Table, run: dict[str, Any]) -> dict[str, Any]:
    scored = {rule: held_out_score(table, run, weights) for rule, weights in choices(run).items()}
    alone = [held_out_score(table, run, {t["id"]: 1.0}) for t in run["trials"]]
    return {"dataset": table.name, "metric": table.metric, "validation_rows": len(run["y_val"]),
            "trials": len(run["trials"]), **scored, "oracle": max(alone), "each_trial": alone}


def report(rows: list[dict[str, Any]]) -> str:
    rules = ("selection", "shrunk", "best", "top2", "top3", "oracle")
    lines = ["| dataset | metric | validation rows | trials | " + " | ".join(rules) + " | shrunk - selection |",
             "|---|---|---|---|" + "---|" * len(rules) + "---|"]
    for row in sorted(rows, key=lambda r: r["validation_rows"]):
        lines.append(f"| {row['dataset']} | {row['metric']} | {row['validation_rows']} | {row['trials']} | "
                     + " | ".join(f"{row[r]:.4f}" for r in rules) + f" | {row['shrunk'] - row['selection']:+.4f} |")
    lines.append("")
    for rule in ("shrunk", "best", "top2", "top3"):
        diffs = np.array([row[rule] - row["selection"] for row in rows])
        lines.append(f"- {rule} against selection: mean {diffs.mean():+.4f}, better on {(diffs > 1e-9).sum()}, "
                     f"worse on {(diffs < -1e-9).sum()}, equal on {(np.abs(diffs) <= 1e-9).sum()} of {len(rows)}; "
                     f"worst {diffs.min():+.4f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", required=True, help="names from benchmarks._tables (e.g. its TINY tables)")
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--out", type=Path, default=RESULTS / f"selection-{time.strftime('%Y%m%d-%H%M')}.json")
    args = parser.parse_args()
    rows = per_table(args.datasets.split(","),
                     lambda workspace, table: evaluate(table, trial_outputs(workspace, table, args.budget)), args.out,
                     shown=lambda row: {k: v for k, v in row.items() if k != "each_trial"})
    print(report(rows))


if __name__ == "__main__":
    main()
