"""Monotone piecewise-linear maps in Keras ops, shared by the numeric quantile transform, the
piecewise-linear encoding and the regression target transform."""

from __future__ import annotations

from typing import Any

from keras import ops


def matrix(rows: list[list[float]], width: int) -> list[list[float]]:
    """Ragged per-column knot lists padded to ``width`` by repeating their last value (zero-width
    segments, which contribute nothing)."""
    return [(row or [0.0]) + [(row or [0.0])[-1]] * (width - len(row or [0.0])) for row in rows]


def segments(knots: Any) -> tuple[Any, Any]:
    """(left edges, widths) of the segments between consecutive knots, per column."""
    return knots[:, :-1], knots[:, 1:] - knots[:, :-1]


def piecewise_linear(x: Any, knots: list[list[float]], values: list[list[float]], extrapolate: bool = False) -> Any:
    """The monotone piecewise-linear map through (knots[j], values[j]) for each column j of ``x``.

    Written as a sum of clipped ramps, one per segment, so it needs no gather and runs the same
    on any batch. Beyond the outer knots it is flat, or with ``extrapolate`` continues the
    outer segments' slopes (which keeps it invertible, as a target transform must be).
    """
    width = max(2, max(len(k) for k in knots))
    knot = ops.convert_to_tensor(matrix(knots, width))
    value = ops.convert_to_tensor(matrix(values, width))
    left, widths = segments(knot)
    rise = value[:, 1:] - value[:, :-1]
    slope = ops.where(widths > 0, rise / ops.where(widths > 0, widths, ops.ones_like(widths)), 0.0)
    out = value[:, 0] + ops.sum(slope * ops.minimum(ops.maximum(x[:, :, None] - left, 0.0), widths), axis=-1)
    if extrapolate:
        first, last = _outer_slopes(knots, values)
        out = out + ops.convert_to_tensor(first) * ops.minimum(x - knot[:, 0], 0.0)
        out = out + ops.convert_to_tensor(last) * ops.maximum(x - knot[:, -1], 0.0)
    return out


def _outer_slopes(knots: list[list[float]], values: list[list[float]]) -> tuple[list[float], list[float]]:
    first, last = [], []
    for k, v in zip(knots, values, strict=True):
        if len(k) < 2:
            first.append(1.0)
            last.append(1.0)
            continue
        first.append((v[1] - v[0]) / (k[1] - k[0]))
        last.append((v[-1] - v[-2]) / (k[-1] - k[-2]))
    return first, last
