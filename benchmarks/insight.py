"""What model insight costs and what calibration does, on the quality suite's tables.

For each table: a short search through the job code path (``--trials`` trials, default epochs),
then the final step (``train_final_model``, no refit) timed ``--runs`` times with the insight
(permutation importance, calibration, training profile) and as many times with it replaced by
no-ops, alternating, in the same process; the medians and their difference are the added time
at the end of a job. Also reported per table: the importance's repeats and rows, the top
columns, and the calibration report (temperature, applied or not, test ECE and log loss before
and after). Last, the one-row predict latency added by ``explain`` and by the drift monitor.

    .venv/bin/python -m benchmarks.insight [--datasets breast_cancer,star] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks._docs import write_section
from benchmarks._harness import Workspace, holdout_split
from benchmarks._tables import SUITE

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


@contextmanager
def _without_insight() -> Any:
    """The final step as it was before model insight: no importance, no calibration, no profile."""
    from automl.search import runner

    saved = runner._importance, runner.calibrate, runner.training_profile

    class _Off:
        applied = False
        temperature = 1.0
        report = None

    runner._importance = lambda *args, **kwargs: None
    runner.calibrate = lambda *args, **kwargs: _Off()  # type: ignore[assignment]
    runner.training_profile = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        yield
    finally:
        runner._importance, runner.calibrate, runner.training_profile = saved


def run_table(workspace: Workspace, table: Any, trials: int, runs: int) -> dict[str, Any]:
    from automl.search.local import run_local_search
    from automl.search.runner import train_final_model

    fit, _ = holdout_split(table.frame(), table.target, table.task)
    spec = workspace.job(fit, table.name, target=table.target, max_trials=trials, refit=False)
    run_local_search(spec)
    spec = replace(spec, deadline=None)
    train_final_model(spec)  # warm-up: traces, caches
    with_insight, without = [], []
    trained = None
    for _ in range(runs):
        started = time.perf_counter()
        trained = train_final_model(spec)
        with_insight.append(time.perf_counter() - started)
        with _without_insight():
            started = time.perf_counter()
            train_final_model(spec)
            without.append(time.perf_counter() - started)
    assert trained is not None
    return {"table": table.name, "task": table.task, "rows": sum(trained.split_sizes.values()),
            "columns": len(trained.features), "with": statistics.median(with_insight),
            "without": statistics.median(without), "importance": trained.importance,
            "calibration": trained.calibration, "members": len(trained.members)}


def latency(workspace: Workspace, table: Any, calls: int) -> dict[str, Any]:
    """One-row predict in process (the route's work without HTTP): plain, with ``explain``, and the cost
    of handing the row to the drift monitor; medians over ``calls`` alternating calls, in µs."""
    from automl.registry import save_model
    from automl.search.local import run_local_search
    from automl.serving.adapters import json_instances
    from automl.serving.drift import DriftMonitor
    from automl.serving.predictor import Predictor
    from automl.usecases.predictions import answer

    fit, held = holdout_split(table.frame(), table.target, table.task)
    spec = workspace.job(fit, f"{table.name}-latency", target=table.target, max_trials=1, refit=False)
    trained = run_local_search(spec).trained
    folder = save_model(trained.model, trained.metadata(spec, "latency"), workspace.settings.models_dir,
                        f"{table.name}-latency")
    predictor = Predictor(folder)
    row = held.drop(columns=[table.target]).iloc[:1].to_dict("records")
    monitor = DriftMonitor(workspace.store, flush_s=3600, retention_days=1)
    timings: dict[str, list[float]] = {"plain": [], "explain": [], "observe": []}
    for _ in range(calls):
        for name in ("plain", "explain"):
            started = time.perf_counter()
            answer(predictor, json_instances(predictor, row), proba=False, warnings=True, explain=name == "explain")
            timings[name].append(time.perf_counter() - started)
        batch = json_instances(predictor, row)
        started = time.perf_counter()
        monitor.observe(predictor, batch)
        timings["observe"].append(time.perf_counter() - started)
    return {"table": table.name, "columns": len(predictor.features), "calls": calls,
            **{name: 1e6 * statistics.median(values) for name, values in timings.items()}}


def report(rows: list[dict[str, Any]], trials: int, runs: int) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on 2 CPU cores by `benchmarks/insight.py`: per table, a {trials}-trial "
        f"search through the job code path, then its final step (no refit) run {runs} times with the model insight "
        "and as many times without it (importance, calibration and profile replaced by no-ops), alternating, in one "
        "process; medians.",
        "",
        "| table | task | rows | columns | members | final step without, s | with, s | added, s | importance: "
        "repeats x test rows | most important (mean drop) | temperature | applied | test ECE before → after | "
        "test log loss before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        imp, cal = r["importance"] or {}, r["calibration"]
        top = ", ".join(f"{c['name']} ({c['mean']:.3f})" for c in imp.get("columns", [])[:3])
        if cal:
            calibration = (f"{cal['temperature']:.3f} | {'yes' if cal['applied'] else 'no'} | "
                           f"{cal['uncalibrated']['ece']:.4f} → {cal['calibrated']['ece']:.4f} | "
                           f"{cal['uncalibrated']['log_loss']:.4f} → {cal['calibrated']['log_loss']:.4f}")
        else:
            calibration = "- | - | - | -"
        lines.append(f"| {r['table']} | {r['task']} | {r['rows']} | {r['columns']} | {r['members']} | "
                     f"{r['without']:.2f} | {r['with']:.2f} | {r['with'] - r['without']:+.2f} | "
                     f"{imp.get('repeats')} x {imp.get('rows')} | {top} | {calibration} |")
    added = [r["with"] - r["without"] for r in rows]
    lines += ["", f"Added time at the end of a job: median {statistics.median(added):+.2f} s, largest "
                  f"{max(added):+.2f} s ({rows[added.index(max(added))]['table']})."]
    calibrated = [r for r in rows if r["calibration"]]
    if calibrated:
        applied = [r for r in calibrated if r["calibration"]["applied"]]
        better = [r for r in applied if r["calibration"]["calibrated"]["log_loss"]
                  < r["calibration"]["uncalibrated"]["log_loss"]]
        lines.append(f"Temperature scaling applied automatically on {len(applied)} of {len(calibrated)} classifiers; "
                     f"on the test rows it lowered the log loss on {len(better)} of those {len(applied)}.")
    return "\n".join(lines)


def latency_report(found: dict[str, Any]) -> str:
    return (f"One-row predict in process ({found['table']}, {found['columns']} columns, the route's work without "
            f"HTTP, median of {found['calls']} alternating calls): {found['plain']:.0f} µs with input warnings, "
            f"{found['explain']:.0f} µs with `explain` as well ({found['explain'] - found['plain']:+.0f} µs: one "
            f"model call on {found['columns'] + 1} rows instead of 1, and the answer); handing the row to the "
            f"drift monitor {found['observe']:.1f} µs (the counting runs on the monitor's thread).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(t.name for t in SUITE))
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000, help="one-row calls for the latency figures")
    parser.add_argument("--write", action="store_true", help="record the table in docs/benchmarks.md")
    args = parser.parse_args()
    wanted = args.datasets.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        workspace = Workspace.create(Path(root))
        for table in SUITE:
            if table.name in wanted:
                rows.append(run_table(workspace, table, args.trials, args.runs))
                print(rows[-1]["table"], f"{rows[-1]['without']:.2f} s → {rows[-1]['with']:.2f} s", flush=True)
        found = latency(workspace, SUITE[0], args.calls)
    body = report(rows, args.trials, args.runs) + "\n\n" + latency_report(found)
    print(body)
    if args.write:
        write_section(DOCS, "insight", "Model insight", body)


if __name__ == "__main__":
    main()
