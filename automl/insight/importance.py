"""Permutation importance: how much the model's held-out score drops when one column is shuffled.

For each input column and each repeat, the column's values are permuted among the held-out test
rows (breaking its link with the target and the other columns, keeping its distribution) and
the task's main metric (``automl.search.evaluation.MAIN_METRIC``) is measured again; a column's
importance is the mean drop over the repeats, with its standard deviation. A drop near zero
means the model does not use the column (or has an equally informative one besides it:
correlated columns share their importance).

All the shuffled copies of one repeat go through the model in as few predict calls as memory
allows (``MAX_ROWS_PER_CALL``), so a 30-column table costs a few predict calls, not 150.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from automl.search.evaluation import MAIN_METRIC, main_score

REPEATS = 5
MAX_ROWS = 2000  # test rows used (a sample when there are more)
MAX_ROWS_PER_CALL = 100_000


def permutation_importance(predict: Callable[[dict[str, np.ndarray]], np.ndarray], x: dict[str, np.ndarray],
                           y: np.ndarray, task: str, columns: list[tuple[str, str]], seed: int,
                           repeats: int = REPEATS, seconds: float | None = None) -> dict[str, Any]:
    """``predict``: inputs -> the model's output; ``columns``: (input key, column name) pairs.

    ``seconds`` bounds the time spent: repeats stop once another would not fit (at least one
    runs). The answer names the metric, its unshuffled value, the repeats and rows used, and
    each column's mean drop and spread, most important first."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if n > MAX_ROWS:
        rows = np.sort(rng.choice(n, MAX_ROWS, replace=False))
        x, y, n = {k: v[rows] for k, v in x.items()}, y[rows], MAX_ROWS
    baseline = main_score(task, y, predict(x))
    per_call = max(1, MAX_ROWS_PER_CALL // max(1, n))
    drops: dict[str, list[float]] = {key: [] for key, _ in columns}
    started = time.monotonic()
    done = 0
    for _ in range(repeats):
        if done and seconds is not None and (time.monotonic() - started) / done * (done + 1) > seconds:
            break
        for first in range(0, len(columns), per_call):
            group = columns[first:first + per_call]
            stacked = {key: np.concatenate([values] * len(group)) for key, values in x.items()}
            for i, (key, _) in enumerate(group):
                stacked[key][i * n:(i + 1) * n] = x[key][rng.permutation(n)]
            output = predict(stacked)
            for i, (key, _) in enumerate(group):
                drops[key].append(baseline - main_score(task, y, output[i * n:(i + 1) * n]))
        done += 1
    means = {key: round(float(np.mean(drops[key])), 6) for key, _ in columns}
    ranked = [{"name": name, "mean": means[key], "std": round(float(np.std(drops[key])), 6)}
              for key, name in sorted(columns, key=lambda column: -means[column[0]])]
    return {"method": "permutation", "split": "test", "metric": MAIN_METRIC[task], "baseline": round(baseline, 6),
            "repeats": done, "rows": n, "seconds": round(time.monotonic() - started, 3), "columns": ranked}
