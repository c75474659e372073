"""Worker memory across a long search: resident memory per trial, fresh process per trial vs one.

Starts the service exactly as ``make run`` does (API + a Celery worker, embedded SQLite
broker and store, in a temporary folder), runs one job of ``--trials`` trials, and samples
the resident memory (RSS) of the worker's main process and of its pool process(es) every
0.2 s. Each trial is attributed to the pool process that ran it (the trial's lease owner).

Run twice: with the default ``AUTOML_WORKER_MAX_TASKS_PER_CHILD=1`` (each trial in a fresh
pool process) and with ``0`` (one pool process runs every trial, as a plain Keras Tuner
loop would), and compare the peak RSS of early and late trials.

    .venv/bin/python benchmarks/worker_memory.py --trials 30 [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from sklearn.datasets import load_breast_cancer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._docs import write_section
from benchmarks._service import local_service


class Sampler(threading.Thread):
    """(wall time, pid, RSS) of the worker's main process and its children, every 0.2 s."""

    def __init__(self, root: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            now = time.time()
            for process in processes:
                try:
                    self.samples.append((now, process.pid, process.memory_info().rss))
                except psutil.NoSuchProcess:
                    continue

    def peak(self, pid: int, start: float, end: float) -> float:
        values = [rss for t, p, rss in self.samples if p == pid and start <= t <= end]
        return max(values) / 2**20 if values else 0.0


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def run(trials: int, max_tasks_per_child: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root, local_service(
        Path(root), env={"AUTOML_WORKER_MAX_TASKS_PER_CHILD": str(max_tasks_per_child)}
    ) as service:
        assert service.worker is not None
        worker = service.worker
        sampler = Sampler(psutil.Process(worker.pid))
        sampler.start()
        dataset = service.upload(load_breast_cancer(as_frame=True).frame, "cancer")
        started = time.monotonic()
        state = service.run_job(
            dataset_id=dataset["id"], target="target", tuner="random", max_trials=trials,
            max_epochs=3, seed=0, search_space={"num_layers": {"min": 1, "max": 3}},
        )
        elapsed = time.monotonic() - started
        sampler.stop.set()
        sampler.join()
        board = service.http.get(f"{service.url}/api/v1/jobs/{state['id']}/trials", timeout=10).json()["trials"]
    ordered = sorted(board, key=lambda t: t["number"])
    per_trial = [sampler.peak(int(t["worker"].rsplit(":", 3)[2]), _epoch(t["started_at"]),
                              _epoch(t["finished_at"]) + 0.5) for t in ordered]
    main = [rss / 2**20 for _, pid, rss in sampler.samples if pid == worker.pid]
    return {
        "mode": "fresh process per trial" if max_tasks_per_child == 1 else "one process for every trial",
        "state": state["state"],
        "trials": len(ordered),
        "elapsed_s": elapsed,
        "pool_processes": len({t["worker"].rsplit(":", 3)[2] for t in ordered}),
        "trial_peak_first5": statistics.median(per_trial[:5]) if per_trial else 0.0,
        "trial_peak_last5": statistics.median(per_trial[-5:]) if per_trial else 0.0,
        "main_first": main[0] if main else 0.0,
        "main_last": main[-1] if main else 0.0,
    }


def table(results: list[dict[str, Any]], trials: int) -> str:
    lines = [
        f"### Worker memory across a {trials}-trial search (breast_cancer, random, 3 epochs per trial)",
        "",
        "Measured by `benchmarks/worker_memory.py` (psutil, RSS sampled every 0.2 s; MiB).",
        "",
        "| mode | trials | pool processes | peak RSS of a trial, first 5 (median) | last 5 (median) | growth "
        "| worker main process, start → end | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        growth = (r["trial_peak_last5"] / r["trial_peak_first5"] - 1) * 100 if r["trial_peak_first5"] else 0.0
        lines.append(
            f"| {r['mode']} | {r['trials']} ({r['state']}) | {r['pool_processes']} | {r['trial_peak_first5']:.0f} "
            f"| {r['trial_peak_last5']:.0f} | {growth:+.1f} % | {r['main_first']:.0f} → {r['main_last']:.0f} "
            f"| {r['elapsed_s']:.0f} s |"
        )
    lines += [
        "",
        "A trial's figure is the peak RSS of the pool process that ran it, between the trial's start and end. "
        "The service default is a fresh pool process per trial (`AUTOML_WORKER_MAX_TASKS_PER_CHILD=1`); its "
        "cost is the TensorFlow import in each new process, visible in the wall time.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--write", type=Path, default=None, help="Replace the memory section of this file.")
    args = parser.parse_args()
    results = [run(args.trials, 1), run(args.trials, 0)]
    text = table(results, args.trials)
    print(text)
    if args.write:
        write_section(args.write, "memory", "Worker memory", text)


if __name__ == "__main__":
    main()
