"""Declaring a space to Keras Tuner: one hyperparameter at a time, inside its conditions, with the
job's narrowing and data-dependent defaults applied. Receives ``keras_tuner.HyperParameters``
objects from the hypermodels; imports nothing of Keras Tuner itself.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from typing import Any

from automl.hypermodels.narrowing import unmet_condition
from automl.hypermodels.space import SPACE_BY_KIND, Condition, Hyperparameter, is_active


def _default(hp: Hyperparameter, candidates: list[Any] | None, low: Any = None, high: Any = None) -> Any:
    if candidates is not None:
        return hp.default if hp.default in candidates else candidates[0]
    return hp.default if low <= hp.default <= high else low


def declare(hps: Any, name: str, overrides: dict[str, dict[str, Any]], kind: str = "tabular",
            default: Any = None) -> Any:
    """Register ``name`` on a ``keras_tuner.HyperParameters`` (within its conditions); its value.

    ``default`` replaces the space's default for this job (a batch size chosen from the data).
    Returns None when the hyperparameter is inactive in this trial (its condition is unmet).
    """
    hp = SPACE_BY_KIND[kind][name]
    if default is not None:
        hp = replace(hp, default=default)
    with ExitStack() as stack:
        # Keras Tuner only nests a scope under a parent declared inside the enclosing scope, so
        # it is told the last condition, inside the scopes its parent was declared in;
        # ``is_active`` applies them all, and ``declare`` returns None when any is unmet, so
        # the model never uses an inactive value.
        for condition in _scope_chain(hp, kind):
            stack.enter_context(hps.conditional_scope(condition.parent, list(condition.values)))
        value = _register(hps, hp, overrides.get(name))
    return value if is_active(name, hps.values, kind) else None


def _scope_chain(hp: Hyperparameter, kind: str) -> list[Condition]:
    if not hp.conditions:
        return []
    last = hp.conditions[-1]
    return [*_scope_chain(SPACE_BY_KIND[kind][last.parent], kind), last]


class SpaceUser:
    """What a hypermodel needs to read its hyperparameters: its task, kind, the job's narrowing, and
    defaults that depend on the job's data (``defaults``: name -> value)."""

    task: str
    kind: str = "tabular"
    overrides: dict[str, dict[str, Any]]
    defaults: dict[str, Any] = {}

    def _hp(self, hp: Any, name: str) -> Any:
        # Hyperparameters the task or the job's narrowing rules out are never declared, so
        # the tuner (a grid above all) does not vary values the model would ignore.
        if self.task not in SPACE_BY_KIND[self.kind][name].tasks or unmet_condition(name, self.overrides, self.kind):
            return None
        return declare(hp, name, self.overrides, self.kind, self.defaults.get(name))


def _register(hps: Any, hp: Hyperparameter, override: dict[str, Any] | None) -> Any:
    name = hp.name
    if override is None and hp.searched:
        override = {"fixed": hp.searched[0]} if len(hp.searched) == 1 else {"values": list(hp.searched)}
    if override and "fixed" in override:
        return hps.Fixed(name, override["fixed"])
    if override and "values" in override:
        values = list(override["values"])
        return hps.Choice(name, values, default=_default(hp, values))
    if hp.type == "boolean":
        return hps.Boolean(name, default=hp.default)
    if hp.type == "choice":
        return hps.Choice(name, list(hp.values), default=hp.default)
    low, high = (override["min"], override["max"]) if override else hp.bounds()
    step = override.get("step") if override else hp.step
    sampling = override.get("sampling", hp.sampling) if override else hp.sampling
    default = _default(hp, None, low, high)
    if hp.type == "int":
        return hps.Int(name, int(low), int(high), step=int(step) if step else None, sampling=sampling,
                       default=int(default))
    return hps.Float(name, float(low), float(high), step=step, sampling=sampling, default=float(default))
