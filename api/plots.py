"""Learning curves and importance bars as PNG images, drawn in the API process with matplotlib, for
reports and chat tools.

Uses matplotlib's object API (``Figure``), not pyplot: no global state, no display, safe in
the server's request threads. matplotlib is imported on the first plot only.
"""

from __future__ import annotations

import io
import math
from typing import Any

NOT_METRICS = ("epoch", "execution")
MIN_WIDTH, MAX_WIDTH = 300, 2000
MIN_HEIGHT, MAX_HEIGHT = 200, 3000


def _families(epochs: list[dict[str, Any]]) -> list[str]:
    """Metric names without their ``val_`` prefix, loss first, in the order they appear."""
    seen: dict[str, None] = {}
    for row in epochs:
        for key, value in row.items():
            if key not in NOT_METRICS and isinstance(value, (int, float)):
                seen.setdefault(key.removeprefix("val_"), None)
    names = list(seen)
    return sorted(names, key=lambda name: name != "loss")


def _points(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs: list[int] = []
    ys: list[float] = []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            xs.append(int(row.get("epoch", len(xs))))
            ys.append(float(value))
    return xs, ys


def learning_curves(epochs: list[dict[str, Any]], title: str, width: int = 900, height: int | None = None) -> bytes:
    """One panel per metric (loss first): training solid, validation dashed, one colour per execution."""
    from matplotlib.figure import Figure

    families = _families(epochs) or ["loss"]
    height = height or min(MAX_HEIGHT, 120 + 240 * len(families))
    figure = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    axes = figure.subplots(len(families), 1, squeeze=False, sharex=True)[:, 0]
    executions = sorted({int(row.get("execution", 0)) for row in epochs}) or [0]
    for ax, family in zip(axes, families, strict=True):
        for index, execution in enumerate(executions):
            rows = [row for row in epochs if int(row.get("execution", 0)) == execution]
            run = f" (run {execution + 1})" if len(executions) > 1 else ""
            for key, style, label in ((family, "-", "train"), (f"val_{family}", "--", "validation")):
                xs, ys = _points(rows, key)
                if xs:
                    ax.plot(xs, ys, style, color=f"C{index}", marker="o" if len(xs) <= 30 else None,
                            markersize=3, label=label + run)
        ax.set_ylabel(family)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    if not epochs:
        axes[0].text(0.5, 0.5, "No epochs recorded yet", ha="center", va="center", transform=axes[0].transAxes)
    axes[-1].set_xlabel("epoch")
    return _png(figure, title)


def importance_bars(importance: dict[str, Any], title: str, width: int = 900, height: int | None = None,
                    most: int = 30) -> bytes:
    """Permutation importance as horizontal bars (mean drop, with its spread as error bars), the most
    important column on top; at most ``most`` columns."""
    from matplotlib.figure import Figure

    columns = importance.get("columns", [])[:most]
    height = height or min(MAX_HEIGHT, max(MIN_HEIGHT, 110 + 26 * len(columns)))
    figure = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    ax = figure.subplots()
    names = [str(c["name"]) for c in reversed(columns)]
    ax.barh(names, [c["mean"] for c in reversed(columns)], xerr=[c["std"] for c in reversed(columns)],
            color="C0", ecolor="0.35", capsize=2)
    ax.axvline(0.0, color="0.5", linewidth=0.8)
    ax.set_xlabel(f"drop in {importance.get('metric', 'score')} when the column is shuffled "
                  f"({importance.get('split', 'test')} rows, {importance.get('repeats', 0)} repeats)")
    ax.grid(axis="x", alpha=0.3)
    if not columns:
        ax.text(0.5, 0.5, "No importance computed", ha="center", va="center", transform=ax.transAxes)
    return _png(figure, title)


def _png(figure: Any, title: str) -> bytes:
    figure.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
