"""Which hyperparameters explained a search's scores: functional ANOVA's main effects, estimated
with a random-forest surrogate over the completed trials.

The trials' hyperparameters become a table (numbers as they are, choices and booleans as codes,
a hyperparameter a trial did not use as a value of its own), a random forest learns the score
from it, and for each hyperparameter the forest's prediction is averaged over the trials with
that hyperparameter set to each of its tried values in turn (its marginal, as fANOVA's
first-order term). The variance of that marginal over the trials' own values, as a share of the
variance of the forest's predictions, is the hyperparameter's importance: the part of the score's
spread it explains on its own. Shares do not add up to 1 (interactions, and what the forest
cannot explain). With few trials the estimate is rough: the answer says how many it rests on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MIN_TRIALS = 4
MAX_VALUES = 20  # values a marginal is evaluated at (quantiles of a number's tried values)
INACTIVE = -1.0  # code of "not used by this trial" for choices; numbers get a value below their range


def _encode(trials: list[dict[str, Any]], names: list[str]) -> np.ndarray:
    columns = []
    for name in names:
        values = [t.get(name) for t in trials]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == sum(v is not None for v in values) and numbers:
            low = min(float(v) for v in numbers)
            spread = max(float(v) for v in numbers) - low or 1.0
            columns.append([float(v) if v is not None else low - spread for v in values])
        else:
            codes = {text: float(i) for i, text in enumerate(sorted({str(v) for v in values if v is not None}))}
            columns.append([codes[str(v)] if v is not None else INACTIVE for v in values])
    return np.asarray(columns, dtype="float64").T


def hyperparameter_importance(trials: list[dict[str, Any]], scores: list[float], seed: int = 0
                              ) -> list[dict[str, Any]]:
    """``trials``: each completed trial's hyperparameters; ``scores``: their objective values. Every
    hyperparameter that varied, most important first, with its share of the score's variance."""
    from sklearn.ensemble import RandomForestRegressor

    if len(trials) < MIN_TRIALS:
        return []
    names = sorted({name for t in trials for name in t if not name.startswith("tuner/")})
    x = _encode(trials, names)
    varied = [j for j in range(x.shape[1]) if np.unique(x[:, j]).size > 1]
    y = np.asarray(scores, dtype="float64")
    if not varied or float(np.var(y)) == 0.0:
        return [{"name": names[j], "importance": 0.0} for j in varied]
    x = x[:, varied]
    forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=1, random_state=seed, n_jobs=1).fit(x, y)
    total = float(np.var(forest.predict(x)))
    found = []
    for j, column in enumerate(varied):
        tried = np.unique(x[:, j])
        grid = tried if tried.size <= MAX_VALUES else np.quantile(x[:, j], np.linspace(0, 1, MAX_VALUES))
        marginal = {}
        for value in grid:
            probe = x.copy()
            probe[:, j] = value
            marginal[float(value)] = float(forest.predict(probe).mean())
        # Weighted by how often each value was tried: the variance over the trials' own values.
        at_trials = np.array([marginal[min(marginal, key=lambda v: abs(v - t))] for t in x[:, j]])
        share = float(np.var(at_trials)) / total if total > 0 else 0.0
        found.append({"name": names[column], "importance": round(min(1.0, share), 4) if math.isfinite(share) else 0.0})
    return sorted(found, key=lambda h: -h["importance"])
