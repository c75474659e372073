"""Greedy ensemble selection (Caruana et al., 2004) on the trials' validation predictions.

Start from the best single model; at each step add (with replacement) the trial whose
predictions, averaged into the ensemble, lower the job's objective most; a trial added k times
out of n steps weighs k/n. The ensemble is kept only when it beats the best single model on
the validation rows. On few validation rows the selection's weights are then shrunk towards an
equal blend of the two best trials (``shrink``); ``choose`` does both. Plain numpy: the Keras side
(one model that averages its members) is ``automl.hypermodels.ensemble``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SELECTION_STEPS = 25
CANDIDATES_PER_MEMBER = 3  # the best 3 x ensemble_size trials are candidates
# A small table's few validation rows choose the final model badly: a trial's early stopping and the
# selection both fit those rows, and on 10-30 of them the "best" trial is often a lucky one. Measured on
# 34 tables of 49-602 rows at 60 s (benchmarks/selection.py; docs/benchmarks.md, "few validation rows"),
# each trial scored alone on held-out rows: airquality's best trial on its 14 validation rows (RMSE 13.4
# against 20-24 for the other five) was the worst of the six held out (R^2 0.45 against 0.52-0.64); with
# this rule the final choice scored +0.041 on average held out (16 better, 7 worse, at worst -0.013;
# +0.087 on the 13 tables not looked at before the rule was fixed). So the selection's weights are
# shrunk towards an equal blend of the two best trials by PRIOR_ROWS / (PRIOR_ROWS + validation rows):
# 0.68 of the weight on 14 rows, 0.25 on 90, 0.03 on 1,000; a trial the shrinkage alone would add with
# less than MIN_PRIOR_WEIGHT stays out (from about 270 validation rows on, so larger tables keep the
# selection's members, their weights moved by at most a tenth).
PRIOR_ROWS = 30
PRIOR_TRIALS = 2
MIN_PRIOR_WEIGHT = 0.05
_EPS = 1e-7


def loss(objective: str, task: str, y: np.ndarray, output: np.ndarray) -> float:
    """The objective as a loss (lower is better) on raw model outputs (probabilities, values)."""
    name = objective.removeprefix("val_")
    y = np.asarray(y)
    output = np.asarray(output, dtype="float64")
    if task == "regression":
        error = output.reshape(-1) - y.reshape(-1).astype("float64")
        if name == "mae":
            return float(np.abs(error).mean())
        if name == "mse":
            return float((error**2).mean())
        return float(np.sqrt((error**2).mean()))  # rmse, and a fixed loss ranked as its RMSE
    if task in ("binary", "multilabel"):
        p = np.clip(output.reshape(y.shape), _EPS, 1 - _EPS)
        truth = y.astype("float64")
        if name in ("accuracy", "binary_accuracy"):
            return float(1.0 - ((p >= 0.5) == (truth >= 0.5)).mean())
        if name in ("auc", "prc"):
            from sklearn import metrics

            scorer = metrics.roc_auc_score if name == "auc" else metrics.average_precision_score
            try:
                return float(1.0 - scorer(truth, p, average="macro"))
            except ValueError:  # one class only in these rows
                return 0.0
        return float(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean())
    labels = y.reshape(-1).astype("int64")
    p = np.clip(output / output.sum(axis=1, keepdims=True), _EPS, 1.0)
    if name == "accuracy":
        return float(1.0 - (p.argmax(axis=1) == labels).mean())
    return float(-np.log(p[np.arange(len(labels)), labels]).mean())


@dataclass(frozen=True)
class Selection:
    weights: dict[str, float]  # trial id -> weight (sums to 1)
    loss: float  # of the weighted ensemble on the validation rows
    single_loss: float  # of the best single trial


def greedy_selection(predictions: dict[str, np.ndarray], y: np.ndarray, objective: str, task: str,
                     max_members: int, steps: int = SELECTION_STEPS) -> Selection:
    """``predictions``: trial id -> validation outputs, best trial first. At most ``max_members``
    distinct trials; once that many are in, steps only re-weigh them."""
    ids = list(predictions)
    losses = {i: loss(objective, task, y, predictions[i]) for i in ids}
    first = min(ids, key=lambda i: (losses[i], ids.index(i)))
    counts = {first: 1}
    total = predictions[first].astype("float64").copy()
    best_counts, best_loss = dict(counts), losses[first]
    for step in range(2, steps + 1):
        allowed = ids if len(counts) < max_members else list(counts)
        value, _, pick = min((loss(objective, task, y, (total + predictions[i]) / step), ids.index(i), i)
                             for i in allowed)
        counts[pick] = counts.get(pick, 0) + 1
        total += predictions[pick]
        if value < best_loss - 1e-12:  # keep the best prefix of the greedy sequence
            best_counts, best_loss = dict(counts), value
    n = sum(best_counts.values())
    weights = {i: c / n for i, c in sorted(best_counts.items(), key=lambda item: (-item[1], ids.index(item[0])))}
    return Selection(weights=weights, loss=best_loss, single_loss=losses[first])


def prior_share(rows: int) -> float:
    """The share of the final weights that goes equally to the best ``PRIOR_TRIALS`` trials, for
    ``rows`` validation rows (``PRIOR_ROWS``)."""
    return PRIOR_ROWS / (PRIOR_ROWS + max(0, rows))


def shrink(weights: dict[str, float], best: list[str], rows: int, max_members: int) -> dict[str, float]:
    """``weights`` (trial id -> weight, summing to 1) shrunk towards an equal blend of ``best`` (the
    best trials, best first; the first ``PRIOR_TRIALS`` are used) by ``prior_share(rows)``. At most
    ``max_members`` distinct trials: past that, the lightest of those outside the prior go; a trial
    the prior alone would bring in with under ``MIN_PRIOR_WEIGHT`` stays out. Heaviest first, ties in
    the order of ``best``, then of ``weights``."""
    share, prior = prior_share(rows), best[: min(PRIOR_TRIALS, max_members)]
    out = {i: (1 - share) * w for i, w in weights.items()}
    for i in prior:
        if i in out or share / len(prior) >= MIN_PRIOR_WEIGHT:
            out[i] = out.get(i, 0.0) + share / len(prior)
    while len(out) > max_members:
        del out[min((i for i in out if i not in prior), key=lambda i: out[i])]
    order = [*prior, *weights]
    total = sum(out.values())
    return {i: out[i] / total for i in sorted(out, key=lambda i: (-round(out[i], 12), order.index(i)))}


@dataclass(frozen=True)
class Choice:
    selection: Selection  # the greedy selection as it came out
    kept: bool  # whether it beat the best single trial (else the best trial alone is shrunk)
    weights: dict[str, float]  # the final weights: the kept selection (or the best trial) shrunk


def choose(predictions: dict[str, np.ndarray], y: np.ndarray, objective: str, task: str, max_members: int) -> Choice:
    """The final weights over ``predictions`` (trial id -> validation outputs, best trial first, at
    least two): greedy selection, kept only when it beats the best single trial, then ``shrink``."""
    best = list(predictions)
    selection = greedy_selection(predictions, y, objective, task, max_members)
    kept = len(selection.weights) > 1 and selection.loss < selection.single_loss
    weights = shrink(selection.weights if kept else {best[0]: 1.0}, best, len(y), max_members)
    return Choice(selection, kept, weights)
