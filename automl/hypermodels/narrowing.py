"""A job's narrowing of a search space: checked against the space and the task, in canonical form.

A job's ``search_space`` maps a name to one of:
  * a scalar: the value is fixed (``"dropout": 0.2``);
  * a list: the search chooses among these values (``"activation": ["relu", "elu"]``);
  * an object: a narrower range (``"num_layers": {"min": 1, "max": 3}``), for numbers.
``normalize_overrides`` checks that against the space and the task and returns the
canonical form ``{"fixed": v} | {"values": [...]} | {"min", "max", "step", "sampling"}``, or a
422 naming every problem. TensorFlow-free.
"""

from __future__ import annotations

from typing import Any

from automl.errors import InvalidJobRequest
from automl.hypermodels.space import SPACE_BY_KIND, Condition, Hyperparameter, is_number


class _Problems:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def _check_value(hp: Hyperparameter, value: Any) -> str | None:
    """Why ``value`` is not a possible value of ``hp`` (None when it is)."""
    if hp.type == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if hp.numeric:
        if not is_number(value):
            return f"must be a number, got {value!r}"
        if hp.type == "int" and float(value) != int(value):
            return f"must be a whole number, got {value!r}"
        low, high = hp.bounds()
        if not low <= float(value) <= high:
            return f"{value!r} is outside the allowed range [{_fmt(low)}, {_fmt(high)}]"
        return None
    if value not in hp.values:
        return f"{value!r} is not one of {list(hp.values)}"
    return None


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) >= 1 else f"{x:g}"


def _coerce(hp: Hyperparameter, value: Any) -> Any:
    if hp.type == "int" or (hp.type == "choice" and all(isinstance(v, int) for v in hp.values)):
        return int(value)
    if hp.numeric:
        return float(value)
    return value


def _normalize_one(hp: Hyperparameter, raw: Any, problems: _Problems) -> dict[str, Any] | None:
    name = hp.name
    if isinstance(raw, dict):
        if not hp.numeric:
            problems.add(name, f"a range needs a numeric hyperparameter; give a list of values from {_domain(hp)}")
            return None
        unknown = set(raw) - {"min", "max", "step", "sampling"}
        if unknown:
            problems.add(name, f"unknown keys {sorted(unknown)}; a range has min, max, step and sampling")
            return None
        low, high = hp.bounds()
        lo = raw.get("min", low)
        hi = raw.get("max", high)
        for key, bound in (("min", lo), ("max", hi)):
            reason = _check_value(hp, bound)
            if reason:
                problems.add(name, f"{key}: {reason}")
                return None
        if lo > hi:
            problems.add(name, f"min ({lo}) is greater than max ({hi})")
            return None
        if hp.type == "choice":
            if set(raw) - {"min", "max"}:
                problems.add(name, "step and sampling do not apply to a list of values")
                return None
            kept = [v for v in hp.values if lo <= v <= hi]
            if not kept:
                problems.add(name, f"no value of {list(hp.values)} lies in [{lo}, {hi}]")
                return None
            return {"fixed": kept[0]} if len(kept) == 1 else {"values": kept}
        sampling = raw.get("sampling", hp.sampling)
        if sampling not in ("linear", "log"):
            problems.add(name, "sampling must be 'linear' or 'log'")
            return None
        if sampling == "log" and lo <= 0:
            problems.add(name, "log sampling needs min > 0")
            return None
        step = raw.get("step", hp.step if sampling == hp.sampling else None)
        if step is not None and (not is_number(step) or step <= 0 or (hp.type == "int" and step != int(step))):
            problems.add(name, "step must be a positive number (a whole number for an int)")
            return None
        if lo == hi:
            return {"fixed": _coerce(hp, lo)}
        return {"min": _coerce(hp, lo), "max": _coerce(hp, hi), "step": step, "sampling": sampling}
    if isinstance(raw, list):
        if not raw:
            problems.add(name, "an empty list leaves nothing to search")
            return None
        for value in raw:
            reason = _check_value(hp, value)
            if reason:
                problems.add(name, reason)
                return None
        values = list(dict.fromkeys(_coerce(hp, v) for v in raw))
        return {"fixed": values[0]} if len(values) == 1 else {"values": values}
    reason = _check_value(hp, raw)
    if reason:
        problems.add(name, reason)
        return None
    return {"fixed": _coerce(hp, raw)}


def _domain(hp: Hyperparameter) -> list[Any]:
    return [False, True] if hp.type == "boolean" else list(hp.values)


def possible_values(name: str, overrides: dict[str, dict[str, Any]], kind: str = "tabular") -> list[Any] | None:
    """The values ``name`` can take under ``overrides``; None for a continuous range."""
    hp = SPACE_BY_KIND[kind][name]
    override = overrides.get(name)
    if override is not None:
        if "fixed" in override:
            return [override["fixed"]]
        if "values" in override:
            return list(override["values"])
        if hp.type == "int":
            return list(range(int(override["min"]), int(override["max"]) + 1))
        return None
    if hp.searched:
        return list(hp.searched)
    if hp.type == "int":
        assert hp.min is not None and hp.max is not None
        return list(range(int(hp.min), int(hp.max) + 1))
    if hp.type in ("choice", "boolean"):
        return _domain(hp)
    return None


def unmet_condition(name: str, overrides: dict[str, dict[str, Any]], kind: str = "tabular") -> Condition | None:
    """A condition of ``name`` that no trial can meet under ``overrides`` (None: reachable)."""
    for condition in SPACE_BY_KIND[kind][name].conditions:
        parent_values = possible_values(condition.parent, overrides, kind)
        if parent_values is not None and not set(parent_values) & set(condition.values):
            return condition
    return None


def normalize_overrides(raw: dict[str, Any] | None, task: str, kind: str = "tabular") -> dict[str, dict[str, Any]]:
    """A job's ``search_space`` in canonical form; a 422 naming every problem otherwise."""
    if not raw:
        return {}
    problems = _Problems()
    overrides: dict[str, dict[str, Any]] = {}
    by_name = SPACE_BY_KIND[kind]
    for name, value in raw.items():
        hp = by_name.get(name)
        if hp is None:
            problems.add(name, f"unknown hyperparameter for {kind} datasets; known: {', '.join(by_name)}")
            continue
        if task not in hp.tasks:
            problems.add(name, f"does not apply to a {task} task (only to {', '.join(sorted(hp.tasks))})")
            continue
        canonical = _normalize_one(hp, value, problems)
        if canonical is not None:
            overrides[name] = canonical
    for name in overrides:
        condition = unmet_condition(name, overrides, kind)
        if condition is not None:
            problems.add(
                name,
                f"can never be used: it applies only when {condition.parent} is one of "
                f"{list(condition.values)}, which this search space excludes",
            )
    if problems.errors:
        names = ", ".join(sorted(problems.errors))
        raise InvalidJobRequest(f"The search_space cannot be used; fix: {names}.",
                                errors={"search_space": [f"{k}: {'; '.join(v)}" for k, v in problems.errors.items()]})
    return overrides
