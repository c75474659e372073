"""Where a small trial's time goes, trials per minute through the service, parallel trials, and
how close a time-budgeted job ends to its budget.

1. In process: one trial step of a small table (breast_cancer) with the store reporter on
   SQLite, split into data preparation, tuner reload and trial creation, model building and
   graph tracing (the first epoch), the epochs themselves, store writes, keeping the best
   weights and predictions, and ending the trial; plus the TensorFlow import a fresh process pays.
2. Through the service as ``make run`` starts it: one fixed configuration, 16 trials, with a fresh
   pool process per trial (the former default) and with reused pool processes (the default);
   then the same on one pool process against ``parallel_trials: 2`` on two pool processes, each
   sized to one core; and a job with ``time_budget_s`` from submission to ``succeeded``.

    .venv/bin/python -m benchmarks.trials [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sklearn.datasets import load_breast_cancer

from benchmarks._docs import write_section
from benchmarks._service import local_service

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
# One configuration for every measured trial: timings, not the search, are compared.
FIXED = {"numeric_transform": "robust", "numeric_embedding": "none", "category_embedding": 0, "num_layers": 2,
         "units": 128, "width_schedule": "funnel", "shrink": 1.0, "residual": False, "wide_deep": False,
         "activation": "relu", "dropout": 0.1, "batch_norm": False, "l1": 0.0, "l2": 0.0, "activity_l2": 0.0,
         "max_norm": 0.0, "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant",
         "batch_size": 32, "label_smoothing": 0.0, "class_weight": "none"}
EPOCHS = 20
TRIALS = 16


def tf_import_seconds(repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import tensorflow, keras, keras_tuner"], check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def breakdown() -> dict[str, float]:
    """Seconds per phase of one trial step (median of 3 steps after a warm-up step)."""
    import keras

    from automl.search import runner, tuners
    from automl.store import coordination
    from benchmarks._harness import Workspace
    from tasks.reporting import StoreReporter

    phases: dict[str, list[float]] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases.setdefault(name, []).append(time.perf_counter() - started)
        return wrapper

    first_epoch: list[float] = []
    epochs: list[float] = []

    class EpochClock(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.last = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            (first_epoch if epoch == 0 else epochs).append(now - self.last)
            self.last = now

    with tempfile.TemporaryDirectory() as root:
        workspace = Workspace.create(Path(root))
        spec = workspace.job(load_breast_cancer(as_frame=True).frame, "cancer", target="target", tuner="random",
                             max_trials=10, max_epochs=EPOCHS, patience=EPOCHS, search_space=FIXED | {
                                 "dropout": [0.0, 0.05, 0.1, 0.15, 0.2]}, seed=0)
        owner = "bench"
        with workspace.store.session() as session:
            assert coordination.claim_lane(session, spec.job_id, 0, 0, owner, 3600) == coordination.ACQUIRED
        reporter = StoreReporter(workspace.store, spec.job_id, owner, lane=0)
        for name in ("trial_started", "epoch_ended", "trial_ended"):
            setattr(reporter, name, timed("store writes", getattr(reporter, name)))
        runner.prepare = timed("data preparation", runner.prepare)
        runner.build_tuner = timed("tuner reload (twice a step)", runner.build_tuner)
        tuners.ReportingMixin._keep = timed("best weights + predictions", tuners.ReportingMixin._keep)  # type: ignore[method-assign]
        fit = runner.SearchHyperModel.fit

        def fit_with_clock(self: Any, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), EpochClock()]
            return fit(self, hp, model, *args, **kwargs)

        runner.SearchHyperModel.fit = timed("fit (all epochs)", fit_with_clock)  # type: ignore[method-assign]
        steps = []
        for _ in range(4):
            phases.clear()
            first_epoch.clear()
            epochs.clear()
            started = time.perf_counter()
            runner.run_trial_step(spec, reporter)
            steps.append({"step": time.perf_counter() - started, **{k: sum(v) for k, v in phases.items()},
                          "first epoch (build + trace)": first_epoch[0],
                          "later epochs (median each)": statistics.median(epochs)})
        runner.SearchHyperModel.fit = fit  # type: ignore[method-assign]
    measured = steps[1:]  # the first step also loads libraries
    return {key: statistics.median(s[key] for s in measured) for key in measured[0]}


def _seconds(job: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


def _search_phase_s(service: Any, job: dict[str, Any]) -> float:
    """From the first trial's start to the last trial's end: the part of a job that lanes share out
    (without the pool processes' TensorFlow import before it and the final step after it)."""
    trials = service.http.get(f"{service.url}/api/v1/jobs/{job['id']}/trials", timeout=30).json()["trials"]
    starts = [datetime.fromisoformat(t["started_at"]) for t in trials if t["started_at"]]
    ends = [datetime.fromisoformat(t["finished_at"]) for t in trials if t["finished_at"]]
    return (max(ends) - min(starts)).total_seconds()


def service_runs() -> dict[str, Any]:
    frame = load_breast_cancer(as_frame=True).frame
    # Forty dropout values: a random search over them finds TRIALS distinct configurations at once.
    request: dict[str, Any] = {
        "target": "target", "tuner": "random", "max_trials": TRIALS, "max_epochs": EPOCHS, "patience": EPOCHS,
        "seed": 0, "ensemble_size": 0, "refit": False,
        "search_space": FIXED | {"dropout": [round(0.01 * i, 2) for i in range(40)]},
    }
    out: dict[str, Any] = {}
    for label, env, concurrency, lanes in (
        ("fresh process per trial", {"AUTOML_WORKER_MAX_TASKS_PER_CHILD": "1",
                                     "AUTOML_WORKER_MAX_MEMORY_PER_CHILD_MB": "0"}, 1, 1),
        ("reused pool process (default)", {}, 1, 1),
        ("2 pool processes, parallel_trials 2", {}, 2, 2),
    ):
        with tempfile.TemporaryDirectory() as root, local_service(Path(root), env=env, concurrency=concurrency) \
                as service:
            dataset = service.upload(frame, "cancer")
            submitted = time.monotonic()
            job = service.run_job(dataset_id=dataset["id"], parallel_trials=lanes, **request)
            out[label] = {"state": job["state"], "trials": job["trials_done"],
                          "wall_s": time.monotonic() - submitted, "search_s": _search_phase_s(service, job)}
            print(label, out[label], flush=True)
    with tempfile.TemporaryDirectory() as root, local_service(Path(root)) as service:
        dataset = service.upload(frame, "cancer")
        submitted = time.monotonic()
        job = service.run_job(dataset_id=dataset["id"], target="target", time_budget_s=60)
        out["budget"] = {"state": job["state"], "trials": job["trials_done"], "budget_s": 60,
                         "submitted_to_succeeded_s": time.monotonic() - submitted,
                         "started_to_finished_s": _seconds(job, "started_at", "finished_at")}
        print("time budget", out["budget"], flush=True)
    return out


def report(tf_import: float, phases: dict[str, float], service: dict[str, Any]) -> str:
    step = phases["step"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores by `benchmarks/trials.py`: breast_cancer "
        f"(569 rows), one fixed configuration (2 × 128 ReLU, batch 32), {EPOCHS} epochs per trial.",
        "",
        "**Where one trial step goes** (in process, store writes to SQLite; median of 3 steps after a warm-up):",
        "",
        "| phase | seconds | share of the step |",
        "|---|---|---|",
    ]
    for key, value in phases.items():
        if key != "step":
            lines.append(f"| {key} | {value:.3f} | {100 * value / step:.0f} % |")
    lines += [f"| **whole step** | **{step:.3f}** | |",
              f"| TensorFlow + Keras + Keras Tuner import in a fresh process (not in the step) | {tf_import:.2f} | |",
              "",
              "(Phases overlap: the fit contains its epochs, store writes and the kept weights.)",
              "",
              "**Through the service** (`make run`'s shape: the API server, one Celery worker, embedded SQLite "
              f"broker and store), {TRIALS} trials of the same configuration (dropout varies), each job submitted once "
              "the worker's pool processes have loaded TensorFlow (as they do when they start, before any job). The "
              "search phase runs from the first trial's start to the last trial's end: without the job's first step "
              "before it and the final step after it, which no number of lanes shortens.",
              "",
              "| mode | trials | submission → succeeded, s | trials per minute | search phase, s | trials per minute "
              "in it |",
              "|---|---|---|---|---|---|"]
    for label in ("fresh process per trial", "reused pool process (default)", "2 pool processes, parallel_trials 2"):
        r = service[label]
        lines.append(f"| {label} | {r['trials']} ({r['state']}) | {r['wall_s']:.1f} | "
                     f"{60 * r['trials'] / r['wall_s']:.1f} | {r['search_s']:.1f} | "
                     f"{60 * r['trials'] / r['search_s']:.1f} |")
    def rate(label: str, span: str = "wall_s") -> float:  # trials per second: runs may finish different numbers
        return service[label]["trials"] / service[label][span]

    two, one = "2 pool processes, parallel_trials 2", "reused pool process (default)"
    speedup, search_speedup = rate(two) / rate(one), rate(two, "search_s") / rate(one, "search_s")
    fresh = rate("reused pool process (default)") / rate("fresh process per trial")
    budget = service["budget"]
    over = budget["submitted_to_succeeded_s"] - budget["budget_s"]
    lines += [
        "",
        f"- reused pool processes against a fresh one per trial: {fresh:.2f}× the trials per minute",
        f"- two pool processes (one core each) with `parallel_trials: 2` against one: **{search_speedup:.2f}×** the "
        f"trials per minute in the search phase (aim ≥ 1.8×: {'met' if search_speedup >= 1.8 else 'NOT met'}); "
        f"**{speedup:.2f}×** from submission to `succeeded` ({'met' if speedup >= 1.8 else 'NOT met'}; the same "
        f"fixed start and end in both)",
        f"- a job with `time_budget_s: 60` and the defaults otherwise ({budget['trials']} trials, ensemble and refit "
        f"included): {budget['submitted_to_succeeded_s']:.1f} s from submission to `succeeded` "
        f"({budget['started_to_finished_s']:.1f} s from its start); {over:+.1f} s against the budget (aim: "
        f"≤ +10 s here: {'met' if over <= max(10, 0.05 * budget['budget_s']) else 'NOT met'})",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    tf_import = tf_import_seconds()
    phases = breakdown()
    print(phases, flush=True)
    service = service_runs()
    body = report(tf_import, phases, service)
    print(body)
    if args.write:
        write_section(DOCS, "trials", "Trials per minute", body)


if __name__ == "__main__":
    main()
