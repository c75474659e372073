"""Regression target transforms: fitted on the training split, inverted inside the saved model.

The network learns a standardised transformed target; its output layer (``TargetOutput``)
turns that back into the target's own units, so every prediction, metric and ensemble
works in units. The loss (``training.StandardizedLoss``) applies the forward transform to
both the true and the predicted values, so training happens on the transformed scale.

``none``: standardisation only. ``log1p``: log(1 + y), for targets >= 0 with a long right
tail (prices, counts, durations). ``quantile``: the monotone piecewise-linear map through the
target's training quantiles and their normal scores, continued linearly beyond them so that
it stays invertible. ``choose`` picks ``log1p`` for a non-negative, right-skewed target.

Whatever the transform, the model answers within the training targets' range widened by
``OUTPUT_MARGIN`` of it on each side (gradient boosting's answers never leave the range at all).
A network extrapolates where trees cannot, and through ``log1p``'s inverse exponentially: on
Forbes2000's market values (at most 285 in the rows the job had) a 60 s job answered 1,160 for a
company worth 287, and R^2 was -4.0; 0.20 with this bound (the rest of the loss was a column of
company names, see ``automl.preprocessing.features.IDENTIFIER_SHARE``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from automl.preprocessing.features import quantile_knots

TARGET_TRANSFORMS = ("none", "log1p", "quantile")
SKEWED = 1.0  # sample skewness above which a non-negative target is log-transformed by default
OUTPUT_MARGIN = 0.1  # answers stay within the training targets' range widened by this share of it


def skewness(y: np.ndarray) -> float:
    y = np.asarray(y, dtype="float64").reshape(-1)
    std = y.std()
    return float(((y - y.mean()) ** 3).mean() / std**3) if std > 0 else 0.0


def choose(y: np.ndarray) -> str:
    """The automatic transform: ``log1p`` for a non-negative target skewed to the right."""
    y = np.asarray(y, dtype="float64").reshape(-1)
    y = y[np.isfinite(y)]
    if y.size and y.min() >= 0 and skewness(y) > SKEWED and np.log1p(y).std() > 0:
        return "log1p"
    return "none"


@dataclass(frozen=True)
class TargetTransform:
    kind: str = "none"
    mean: float = 0.0  # of the transformed training targets
    std: float = 1.0
    knots: list[float] = field(default_factory=list)  # quantile: target quantiles ...
    scores: list[float] = field(default_factory=list)  # ... and their normal scores
    # The transformed range the output is kept in: the training targets' range widened by OUTPUT_MARGIN
    # (transforms fitted before the margin: the transformed range widened by 3 standard deviations).
    low: float = -1e30
    high: float = 1e30

    @classmethod
    def fit(cls, kind: str, y: np.ndarray) -> TargetTransform:
        if kind not in TARGET_TRANSFORMS:
            raise ValueError(f"unknown target transform {kind!r}")
        y = np.asarray(y, dtype="float64").reshape(-1)
        knots: list[float] = []
        scores: list[float] = []
        if kind == "quantile":
            knots, scores = quantile_knots(y, max_knots=65)
            if len(knots) < 2:  # a constant target: nothing to map
                kind, knots, scores = "none", [], []
        base = TargetTransform(kind, knots=knots, scores=scores)
        t = base.forward_numpy(y)
        std = float(t.std()) or 1.0
        margin = OUTPUT_MARGIN * float(y.max() - y.min())
        low, high = base.forward_numpy(np.array([y.min() - margin, y.max() + margin]))
        return cls(kind, float(t.mean()), std, knots, scores, float(low), float(high))

    def forward_numpy(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype="float64")
        if self.kind == "log1p":
            return np.log1p(np.maximum(y, 0.0))
        if self.kind == "quantile":
            k, s = np.asarray(self.knots), np.asarray(self.scores)
            inside = np.interp(y, k, s)
            first = (s[1] - s[0]) / (k[1] - k[0])
            last = (s[-1] - s[-2]) / (k[-1] - k[-2])
            return inside + first * np.minimum(y - k[0], 0) + last * np.maximum(y - k[-1], 0)
        return y

    # Keras side ------------------------------------------------------------------------------

    def forward(self, y: Any, predicted: bool = False) -> Any:
        """``predicted``: values the model answered (``inverse``'s), which are never below the
        target's floor, so they are not clamped to it: the clamp would stop their gradient."""
        from keras import ops

        from automl.preprocessing.piecewise import piecewise_linear

        y = ops.cast(y, "float32")
        if self.kind == "log1p":
            return ops.log1p(y if predicted else ops.maximum(y, 0.0))
        if self.kind == "quantile":
            return piecewise_linear(ops.reshape(y, (-1, 1)), [self.knots], [self.scores], extrapolate=True)
        return y

    def inverse(self, t: Any) -> Any:
        from keras import ops

        from automl.preprocessing.piecewise import piecewise_linear

        # Kept within [low, high] (log1p: never below 0, as its targets, and expm1 cannot overflow).
        # The clip passes gradients straight through, as if it were not there: a clip's own gradient
        # is zero outside its range, so a network whose output strayed below 0 on every row would get
        # no gradient and never come back (on a zero-inflated target whole trials stalled so,
        # answering negative values).
        t = ops.cast(t, "float32")
        low = max(self.low, 0.0) if self.kind == "log1p" else self.low
        # (the clipped value exactly, plus t - t, which is 0 but carries the gradient)
        kept = ops.stop_gradient(ops.clip(t, low, self.high)) + (t - ops.stop_gradient(t))
        if self.kind == "log1p":
            return ops.expm1(kept)
        if self.kind == "quantile":
            return piecewise_linear(kept, [self.scores], [self.knots], extrapolate=True)
        return kept

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TargetTransform:
        return cls(**data) if data else cls()
