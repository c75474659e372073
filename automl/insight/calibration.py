"""Calibration of a classifier's probabilities: how far they are from the observed frequencies, and
temperature scaling to bring them closer.

**Reliability** (on the held-out test rows): the predictions are put in ``BINS`` equal-width bins
of predicted probability, and each bin's mean predicted probability is set against the observed
frequency of its rows. Binary: the positive class's probability against the share of positives;
multiclass: the top class's probability (confidence) against the share predicted right;
multilabel: every label's probability against that label's value. The expected calibration
error (ECE) is the rows-weighted mean gap between the two.

**Temperature scaling** (Guo et al. 2017) divides the model's log-odds by one number T fitted on
the validation rows by minimising log loss (T > 1 softens over-confident probabilities, T < 1
sharpens timid ones), against Platt's targets (1 - 1/(n+2) for the true class rather than 1): on a
validation split the model gets all right, plain log loss would keep sharpening towards certainty,
which the next row it gets wrong pays for (seen on breast_cancer: test log loss 0.017 -> 0.067).
It never changes which class is predicted. ``calibrate: null`` (the job
default) applies it when it helps on rows it was not fitted on: T fitted on each half of the
validation rows must lower the plain log loss of the other half by at least ``MIN_GAIN`` (1 %, the
mean over both halves); a model that is right and sure on its validation rows keeps its
probabilities. The
served model then carries the fitted T as its last layer (``automl.hypermodels.calibration``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

BINS = 10
EPS = 1e-7
LOG_T_BOUNDS = (-3.0, 3.0)  # T between e^-3 (0.05) and e^3 (20)


def scaled(task: str, output: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities with their log-odds divided by ``temperature``; the same computation as the
    served model's ``TemperatureScaling`` layer."""
    p = np.clip(np.asarray(output, dtype="float64"), EPS, 1.0 - EPS)
    if task == "multiclass":
        logits = np.log(p) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p)) / temperature))


def log_loss(task: str, y: np.ndarray, output: np.ndarray, smoothing: float = 0.0) -> float:
    """Cross-entropy of ``output`` against ``y``; with ``smoothing`` e, against targets moved e of the way
    from the labels towards the other classes (Platt's targets, see ``fit_temperature``)."""
    p = np.clip(np.asarray(output, dtype="float64"), EPS, 1.0 - EPS)
    if task == "multiclass":
        p = p / p.sum(axis=1, keepdims=True)
        codes = np.asarray(y).reshape(-1).astype("int64")
        t = np.full(p.shape, smoothing / max(1, p.shape[1] - 1))
        t[np.arange(len(codes)), codes] = 1.0 - smoothing
        return float(-np.mean(np.sum(t * np.log(p), axis=1)))
    t = np.asarray(y, dtype="float64").reshape(p.shape)
    t = t * (1.0 - smoothing) + (1.0 - t) * smoothing
    return float(-np.mean(t * np.log(p) + (1.0 - t) * np.log(1.0 - p)))


def platt_smoothing(rows: int) -> float:
    """Platt's (1999) targets for fitting a calibration map on ``rows`` rows: 1 - 1/(n+2) rather than 1, so
    that rows the model gets all right do not drive the temperature to zero (certainty it cannot have)."""
    return 1.0 / (rows + 2)


def fit_temperature(task: str, y: np.ndarray, output: np.ndarray) -> float:
    """The T that minimises the log loss of ``output`` against Platt's targets for ``y``."""
    smoothing = platt_smoothing(len(y))
    found = minimize_scalar(lambda log_t: log_loss(task, y, scaled(task, output, float(np.exp(log_t))), smoothing),
                            bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def _pairs(task: str, y: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted probability, observed 0/1) per point the reliability table bins."""
    p = np.asarray(output, dtype="float64")
    if task == "multiclass":
        codes = np.asarray(y).reshape(-1).astype("int64")
        return p.max(axis=1) / p.sum(axis=1), (p.argmax(axis=1) == codes).astype("float64")
    return p.reshape(-1), np.asarray(y, dtype="float64").reshape(-1)


def reliability(task: str, y: np.ndarray, output: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """The reliability table and the expected calibration error of ``output`` against ``y``."""
    predicted, observed = _pairs(task, y, output)
    index = np.minimum((predicted * bins).astype("int64"), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        if not count:
            continue
        mean_p, freq = float(predicted[inside].mean()), float(observed[inside].mean())
        ece += count / len(predicted) * abs(freq - mean_p)
        table.append({"lower": b / bins, "upper": (b + 1) / bins, "count": count,
                      "mean_predicted": round(mean_p, 4), "observed": round(freq, 4)})
    return {"ece": round(ece, 6), "log_loss": round(log_loss(task, y, output), 6), "bins": table}


def cross_fitted_gain(task: str, y: np.ndarray, output: np.ndarray, seed: int) -> float:
    """The share of the log loss (plain, against the labels) saved on validation rows by a temperature
    fitted on the other half of them (mean of both halves; positive: scaling helps on rows it did not
    see)."""
    order = np.random.default_rng(seed).permutation(len(y))
    halves = order[: len(y) // 2], order[len(y) // 2:]
    gain = 0.0
    for fit_rows, check_rows in (halves, halves[::-1]):
        t = fit_temperature(task, y[fit_rows], output[fit_rows])
        before = log_loss(task, y[check_rows], output[check_rows])
        gain += (before - log_loss(task, y[check_rows], scaled(task, output[check_rows], t))) / max(before, EPS)
    return gain / 2


MIN_VALIDATION_ROWS = 20  # fewer: "automatic" leaves the probabilities as they are
MIN_GAIN = 0.01  # "automatic" applies a temperature that saves at least this share of the held-back log loss


@dataclass
class Calibration:
    temperature: float
    applied: bool
    report: dict[str, Any]


def calibrate(task: str, requested: bool | None, y_val: np.ndarray, val_output: np.ndarray, y_test: np.ndarray,
              test_output: np.ndarray, seed: int) -> Calibration:
    """Fit T on the validation rows, decide whether to apply it (``requested``: True always, False
    never, None when it helps on held-back validation rows), and report reliability on the test rows
    before and after."""
    temperature = fit_temperature(task, y_val, val_output)
    if requested is None:
        gain = cross_fitted_gain(task, y_val, val_output, seed) if len(y_val) >= MIN_VALIDATION_ROWS else 0.0
        applied = gain > MIN_GAIN
        reason = (f"automatic: a temperature fitted on half of the validation rows changed the other half's log "
                  f"loss by {-100 * gain:+.1f} % (applied below -{100 * MIN_GAIN:.0f} %)")
    else:
        applied = requested
        reason = "requested by the job (calibrate: true)" if requested else "turned off by the job (calibrate: false)"
    report = {
        "method": "temperature scaling",
        "temperature": round(temperature, 4),
        "applied": applied,
        "reason": reason,
        "split": "test",
        "validation_log_loss": {"uncalibrated": round(log_loss(task, y_val, val_output), 6),
                                "calibrated": round(log_loss(task, y_val, scaled(task, val_output, temperature)), 6)},
        "uncalibrated": reliability(task, y_test, test_output),
        "calibrated": reliability(task, y_test, scaled(task, test_output, temperature)),
    }
    return Calibration(temperature, applied, report)
