"""What ``automl train --wait`` shows while a search runs: trials done / total, the running trial's
epoch, the best score so far and the time left.

On a terminal it is one live line (rich's progress bar); anywhere else (a log, a pipe, CI) a plain
line is printed each time what it says changes, so logs stay readable.
"""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn


def describe(job: dict[str, Any]) -> dict[str, str]:
    """The parts of a progress line for one poll of ``GET /jobs/{id}``."""
    running = sorted(job.get("running_trials") or [], key=lambda t: t.get("number", 0))
    epochs = []
    for trial in running:
        epoch = f"trial {trial['number'] + 1} epoch {trial['epoch']}"
        epochs.append(f"{epoch}/{job['max_epochs']}" if job.get("max_epochs") else epoch)
    best = job.get("best_score")
    return {
        "state": job.get("state", ""),
        "trials": f"{job.get('trials_done', 0)}/{job.get('max_trials') or '?'}",
        "epoch": ", ".join(epochs) or "-",
        "best": f"{job.get('objective', 'score')} {best:.4g}" if best is not None else "no score yet",
        "left": time_left(job),
    }


def time_left(job: dict[str, Any]) -> str:
    """Seconds left as '1m05s': the service's estimate (mean trial time x trials left), capped by
    the wall-clock budget when the job has one; '?' before the first trial has finished."""
    if job.get("state") in ("succeeded", "failed", "cancelled"):
        return "done"
    left = job.get("eta_s")
    budget, elapsed = job.get("time_budget_s"), job.get("elapsed_s")
    if budget is not None and elapsed is not None:
        remaining = max(0.0, budget - elapsed)
        left = remaining if left is None else min(left, remaining)
    return "? left" if left is None else f"{_duration(left)} left"


def line(job: dict[str, Any]) -> str:
    parts = describe(job)
    return (f"{parts['state']}: trials {parts['trials']} | {parts['epoch']} | best {parts['best']} | "
            f"{parts['left']}")


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class JobProgress:
    """Feed it each poll of the job (``update``); ``close`` when the job has finished."""

    def __init__(self, stream: TextIO, live: bool | None = None) -> None:
        self.console = Console(file=stream, force_terminal=live, highlight=False)
        self.live = self.console.is_terminal
        self._last: tuple[str, ...] = ()
        self._bar: Progress | None = None
        self._task: Any = None

    def update(self, job: dict[str, Any]) -> None:
        if not self.live:
            # A line when something other than the countdown changed: logs get one line per event.
            parts = describe(job)
            moved = (parts["state"], parts["trials"], parts["epoch"], parts["best"])
            if moved != self._last:
                self.console.print(line(job), soft_wrap=True)
                self._last = moved
            return
        parts = describe(job)
        if self._bar is None:
            self._bar = Progress(
                SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("trials | {task.fields[epoch]} | best {task.fields[best]} | {task.fields[left]}"),
                console=self.console, transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(parts["state"], total=job.get("max_trials"), epoch=parts["epoch"],
                                            best=parts["best"], left=parts["left"])
        self._bar.update(self._task, completed=job.get("trials_done", 0), description=parts["state"],
                         epoch=parts["epoch"], best=parts["best"], left=parts["left"])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
