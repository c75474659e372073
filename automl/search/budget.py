"""When a search must stop early: a wall-clock deadline or a target objective value.

Checked at every epoch boundary (so a running trial stops promptly and keeps its best
epoch) and between trials (so no new trial starts once the budget is spent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from automl.search.objectives import reached

TIME_BUDGET = "time_budget"
# A new trial starts only while this share of a typical trial's duration is left: most of one when the
# time after the search goes to refits; less when nothing but a trial can use it (no refit fits, or
# ``refit`` is off), since a trial cut short anneals a cosine learning rate by the deadline
# (``training.CosineSchedule``) and joins the ensemble only if it helps on the validation rows.
FITS = 0.6
FITS_WITHOUT_REFIT = 0.3
TARGET_REACHED = "target_reached"
MAX_TRIALS = "max_trials"
EXHAUSTED = "search_space_exhausted"


@dataclass(frozen=True)
class Budget:
    objective: str
    direction: str
    deadline: datetime | None = None
    target_score: float | None = None
    stop_on_epoch_target: bool = True  # False when several executions average into the score
    typical_trial_s: float = 0.0  # how long the job's trials take (median), 0 before the first ends
    fits: float = FITS  # see FITS

    def time_up(self, now: datetime | None = None) -> bool:
        return self.deadline is not None and (now or datetime.now(UTC)) >= self.deadline

    def epoch_stop_reason(self, logs: dict[str, Any] | None) -> str | None:
        if self.time_up():
            return TIME_BUDGET
        if self.stop_on_epoch_target and reached((logs or {}).get(self.objective), self.target_score,
                                                 self.direction):
            return TARGET_REACHED
        return None

    def search_stop_reason(self, best_score: float | None) -> str | None:
        """Before a trial starts. Once a model exists, a trial that would mostly run past the deadline
        (less than ``fits`` of a typical trial's time is left) does not start: its time goes to the
        final model (the refits on every row) instead."""
        if reached(best_score, self.target_score, self.direction):
            return TARGET_REACHED
        if best_score is not None and self.deadline is not None:
            left = (self.deadline - datetime.now(UTC)).total_seconds()
            if left <= self.fits * self.typical_trial_s or left <= 0:
                return TIME_BUDGET
        return None


def search_stop_reason(budget: Budget, best_score: float | None, trials_done: int, max_trials: int) -> str | None:
    """Why a search must end before its next trial (a budget is spent), or None to go on."""
    reason = budget.search_stop_reason(best_score)
    if reason is None and trials_done >= max_trials:
        reason = MAX_TRIALS
    return reason


FINALIZE_OVERHEAD_S = 5.0  # loading the members, scoring them, building and saving the final model
MAX_RESERVE = 0.4
# When no member's full retraining fits, the final step fine-tunes the best trial's weights over every
# row instead (``runner._fine_tune``: as many passes as the time left allows, up to 80); this share of a
# trial's duration is kept for it, about 20 passes (a fifth of a trial's on a table of a few thousand rows)
# plus building and tracing, so the search is not shortened for the passes beyond.
FINE_TUNE_SHARE = 0.25
# A table model averages at most this many networks (each member's trial weights and its retrainings):
# retrainings past a member's first stop there, so a 3-member ensemble's calls cost at most 10 networks'.
MAX_NETWORKS = 10


def typical(trial_seconds: list[float]) -> float:
    """The median duration of the finished trials (0 without any)."""
    return sorted(trial_seconds)[len(trial_seconds) // 2] if trial_seconds else 0.0


def finalize_reserve(budget_s: float | None, trial_seconds: list[float], ensemble_size: int, refit: bool,
                     running_s: float | None = None, retrainings: int = 1) -> float:
    """Seconds of a time budget kept for the final model: no trial runs into them.

    With ``refit`` every member is trained once more on all rows, which takes about as long as
    its trial did; so the reserve follows the trials' median duration, and never exceeds 40 %
    of the budget. It holds only the refits that fit under that cap: when not even one does,
    the final step fine-tunes the best trial over all rows instead, and the reserve holds
    ``FINE_TUNE_SHARE`` of a trial's duration for that; the rest goes to trials.

    ``retrainings``: how many times each member is retrained (tables: the ``retrainings`` option); the
    reserve holds the first retraining of every member before any member's second, and only what fits
    under the cap.

    ``running_s``: how long the trial now running has run, a lower bound of its duration, counted
    with the finished ones (``math.inf``: the latest any trial may run). So the first trial keeps
    room for its own refit while one could fit, and once it has run too long for that, runs on until
    only the scoring and its fine-tune are left.
    """
    return sum(_reserve(budget_s, trial_seconds, ensemble_size, refit, running_s, retrainings))


def start_share(budget_s: float | None, trial_seconds: list[float], ensemble_size: int, refit: bool) -> float:
    """``Budget.fits`` for the job now: ``FITS`` while the reserve holds a refit, else ``FITS_WITHOUT_REFIT``
    (a fine-tune's passes are capped, so time left over after the search would go unused)."""
    return FITS if _reserve(budget_s, trial_seconds, ensemble_size, refit, None)[1] > 0 else FITS_WITHOUT_REFIT


def _reserve(budget_s: float | None, trial_seconds: list[float], ensemble_size: int, refit: bool,
             running_s: float | None, retrainings: int = 1) -> tuple[float, float, float]:
    """(seconds for scoring, for refits, for a fine-tune) of ``finalize_reserve``."""
    if not budget_s:
        return 0.0, 0.0, 0.0
    durations = [*trial_seconds, running_s] if running_s is not None else list(trial_seconds)
    cap = MAX_RESERVE * budget_s
    members = max(1, min(ensemble_size, len(durations)))
    scoring = min(FINALIZE_OVERHEAD_S + members * 0.5, cap)
    per_refit = typical(durations)
    wanted = min(members * retrainings, max(members, MAX_NETWORKS - members))
    refits = min(wanted, int((cap - scoring) // per_refit)) if refit and per_refit > 0 else 0
    if refits:
        return scoring, refits * per_refit, 0.0
    if not refit or per_refit <= 0:
        return scoring, 0.0, 0.0
    # A trial that has run since the job began is the longest any can: t + scoring + share * t = budget.
    longest = (budget_s - scoring) / (1 + FINE_TUNE_SHARE)
    return scoring, 0.0, min(cap - scoring, FINE_TUNE_SHARE * min(per_refit, longest))
