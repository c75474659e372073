"""Soak test of the embedded mode: many short trials back to back, the API polled every second.

Starts the service as ``make run`` does (the API server + Celery worker, SQLite store and
broker) and keeps one short job after another running for ``--minutes``, while a client polls
the job every second. Then reads the service log for what must never happen: "database is
locked", a step the reaper had to queue again, a failed job; and reports the polls' latency.

    .venv/bin/python -m benchmarks.soak [--minutes 30] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sklearn.datasets import load_iris

from benchmarks._docs import write_section
from benchmarks._service import local_service

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
JOB = {"target": "target", "tuner": "random", "max_trials": 20, "max_epochs": 2, "patience": 2, "ensemble_size": 0,
       "refit": False, "search_space": {"num_layers": 1, "units": 16, "numeric_embedding": "none"}}


def soak(minutes: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root, local_service(Path(root)) as service:
        dataset = service.upload(load_iris(as_frame=True).frame, "iris")
        end = time.monotonic() + minutes * 60
        jobs: list[dict[str, Any]] = []
        polls: list[float] = []
        poll_errors = 0
        while time.monotonic() < end:
            created = service.http.post(f"{service.url}/api/v1/jobs", json={"dataset_id": dataset["id"], **JOB},
                                        timeout=30)
            created.raise_for_status()
            job_id = created.json()["id"]
            while True:
                started = time.perf_counter()
                answer = service.http.get(f"{service.url}/api/v1/jobs/{job_id}", timeout=30)
                polls.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    poll_errors += 1
                    time.sleep(1)
                    continue
                job = answer.json()
                if job["state"] in ("succeeded", "failed", "cancelled"):
                    jobs.append(job)
                    break
                time.sleep(1)
        log = (Path(root) / "service.log").read_text(errors="replace")
    trials = sum(j["trials_done"] for j in jobs)
    polls.sort()
    return {
        "minutes": minutes, "jobs": len(jobs), "succeeded": sum(j["state"] == "succeeded" for j in jobs),
        "trials": trials, "polls": len(polls), "poll_errors": poll_errors,
        "poll_p50_ms": 1000 * statistics.median(polls), "poll_p99_ms": 1000 * polls[int(0.99 * (len(polls) - 1))],
        "locked": log.count("database is locked"), "requeued": log.count("queueing its step again"),
        "could_not_queue": log.count("could not queue the next step"),
    }


def report(r: dict[str, Any]) -> str:
    clean = r["locked"] == 0 and r["requeued"] == 0 and r["could_not_queue"] == 0 and r["succeeded"] == r["jobs"]
    return "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores by `benchmarks/soak.py`: the embedded "
        f"mode (`make run`'s shape: the API server, a Celery worker, SQLite store and broker in WAL mode) running "
        f"{r['minutes']:.0f} minutes of short jobs back to back (iris, 20 trials of 2 epochs each), the job polled "
        "every second.",
        "",
        "| jobs (succeeded) | trials | polls (errors) | poll p50 / p99 ms | \"database is locked\" | steps "
        "re-queued by the reaper | \"could not queue the next step\" |",
        "|---|---|---|---|---|---|---|",
        f"| {r['jobs']} ({r['succeeded']}) | {r['trials']} | {r['polls']} ({r['poll_errors']}) | "
        f"{r['poll_p50_ms']:.1f} / {r['poll_p99_ms']:.1f} | {r['locked']} | {r['requeued']} | {r['could_not_queue']} |",
        "",
        f"Aim: no lock error and no re-queue — {'met' if clean else 'NOT met'}.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    result = soak(args.minutes)
    body = report(result)
    print(body)
    if args.write:
        write_section(DOCS, "soak", "Embedded mode under a long run", body)


if __name__ == "__main__":
    main()
