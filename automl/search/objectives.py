"""Which objectives each task can optimise, in which direction, the defaults, and the tuners."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from automl.errors import InvalidJobRequest

OBJECTIVES: dict[str, dict[str, str]] = {
    "binary": {"val_log_loss": "min", "val_loss": "min", "val_accuracy": "max", "val_auc": "max", "val_prc": "max"},
    "multiclass": {"val_log_loss": "min", "val_loss": "min", "val_accuracy": "max"},
    "multilabel": {"val_loss": "min", "val_binary_accuracy": "max", "val_auc": "max"},
    "regression": {"val_loss": "min", "val_mae": "min", "val_rmse": "min", "val_mse": "min"},
}
# Losses of different kinds are not comparable scores: regression searches over its loss, and
# classification over label smoothing (whose loss includes the smoothing). So trials are ranked
# by plain log loss (classification) and RMSE (regression) unless a job asks otherwise.
DEFAULT_OBJECTIVES = {"binary": "val_log_loss", "multiclass": "val_log_loss", "multilabel": "val_loss",
                      "regression": "val_rmse"}
TUNERS = ("bayesian", "random", "hyperband", "grid")


def resolve_objective(task: str, objective: str | None, overrides: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """(name, direction) for ``task``; a 422 naming the allowed ones otherwise."""
    allowed = OBJECTIVES[task]
    name = objective or DEFAULT_OBJECTIVES[task]
    if name not in allowed:
        raise InvalidJobRequest(
            f"Objective '{name}' does not fit a {task} task. Choose one of: {', '.join(allowed)}.",
            errors={"objective": [f"allowed for {task}: {sorted(allowed)}"]},
        )
    if task == "regression" and name == "val_loss" and "fixed" not in overrides.get("loss", {}):
        raise InvalidJobRequest(
            "Objective 'val_loss' cannot rank regression trials that use different losses (mse, mae, huber). "
            'Fix the loss in search_space (e.g. "loss": "mse") or choose val_rmse, val_mae or val_mse.',
            errors={"objective": ["val_loss needs a fixed regression loss"]},
        )
    if task in ("binary", "multiclass") and name == "val_loss" and "fixed" not in overrides.get("label_smoothing", {}):
        raise InvalidJobRequest(
            "Objective 'val_loss' cannot rank trials that use different label smoothing (the loss includes it). "
            'Fix it in search_space (e.g. "label_smoothing": 0) or use val_log_loss, the plain cross-entropy.',
            errors={"objective": ["val_loss needs a fixed label_smoothing"]},
        )
    return name, allowed[name]


# Validation scores closer than this are tied. On a small table's few validation rows several trials
# reach a log loss of ~0 (1e-9 against 1e-12 says nothing about new rows; measured on wine, 22
# validation rows: six of eight trials at most 0.0007, the lowest of them the only one below 1.0 on the
# held-out rows). Among the trials tied with the best, the final model takes the earliest: the starting
# portfolio's entries come in the order of their measured quality over many tables, the tuner's own
# proposals after them.
TIE_TOLERANCE = 1e-3


def tied(score: float, best: float, task: str) -> bool:
    """Whether ``score`` is within ``TIE_TOLERANCE`` of ``best``: absolutely for classification scores
    (log loss, accuracy, AUC, on a fixed scale), relatively for regression errors (in the target's units)."""
    scale = max(abs(score), abs(best)) if task == "regression" else 1.0
    return abs(score - best) <= TIE_TOLERANCE * scale


T = TypeVar("T")


def ties_first(best_first: Sequence[T], score: Callable[[T], float], started: Callable[[T], int], task: str) -> list[T]:
    """Scored trials, given best first, as every view of a search ranks them: those tied with the best
    first of all, in the order they started, then the rest as given. The final model, the job's
    ``best_trial_id`` (and so its interim best model) and the leaderboard all follow it."""
    if not best_first:
        return []
    best = score(best_first[0])
    first = sorted((t for t in best_first if tied(score(t), best, task)), key=started)
    return first + [t for t in best_first if t not in first]


def reached(score: float | None, target: float | None, direction: str) -> bool:
    """Whether ``score`` meets a job's target objective value."""
    if score is None or target is None:
        return False
    return score >= target if direction == "max" else score <= target
