"""Which objectives each task can optimise, in which direction, and the defaults."""

from __future__ import annotations

from automl.errors import InvalidJobRequest

OBJECTIVES: dict[str, dict[str, str]] = {
    "binary": {"val_loss": "min", "val_accuracy": "max", "val_auc": "max"},
    "multiclass": {"val_loss": "min", "val_accuracy": "max"},
    "regression": {"val_loss": "min", "val_mae": "min", "val_rmse": "min"},
}
DEFAULT_OBJECTIVE = "val_loss"
TUNERS = ("bayesian", "random", "hyperband")


def resolve_objective(task: str, objective: str | None) -> tuple[str, str]:
    """(name, direction) for ``task``; a 422 naming the allowed ones otherwise."""
    allowed = OBJECTIVES[task]
    name = objective or DEFAULT_OBJECTIVE
    if name not in allowed:
        raise InvalidJobRequest(
            f"Objective '{name}' does not fit a {task} task. Choose one of: {', '.join(allowed)}.",
            errors={"objective": [f"allowed for {task}: {sorted(allowed)}"]},
        )
    return name, allowed[name]
