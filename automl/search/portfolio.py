"""The search's starting portfolio: known-good configurations tried before the tuner's own proposals.

``portfolio.json`` beside this module is written by ``benchmarks/portfolio.py``: it trains a pool
of candidate configurations on public tables (disjoint from the quality benchmark's), timing each,
and keeps, greedily, the entries that together do best on every table (as AutoGluon's zero-shot
portfolios and Auto-sklearn 2.0 do), in the order that does best within budgets of one to eight
trials: a slow entry goes where only the budgets that hold it see it. An entry names only the
hyperparameters it sets; every other one takes its default (for the batch size and the target
transform, the default the job's data implies).

The oracle (``automl.search.oracles``) proposes the entries in order, each projected into the
job's narrowed space, before Bayesian optimisation, random search or Hyperband's first bracket
take over. Nothing here imports TensorFlow or Keras Tuner.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from automl.hypermodels.space import SPACE_BY_KIND, SPACES, is_active

PORTFOLIO_FILE = Path(__file__).with_name("portfolio.json")


@cache
def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PORTFOLIO_FILE.read_text()) if PORTFOLIO_FILE.exists() else {}
    return data


def entries(kind: str, task: str) -> list[dict[str, Any]]:
    """The portfolio for a kind of dataset, best first, with hyperparameters the task has not left out."""
    space = SPACE_BY_KIND[kind]
    out = []
    for entry in _load().get(kind, []):
        values = {k: v for k, v in entry["values"].items() if k in space and task in space[k].tasks}
        out.append(values)
    return out


def full_assignment(values: dict[str, Any], task: str, kind: str = "tabular",
                    defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every hyperparameter an entry makes active, with the entry's value or the default (the job's
    data-dependent default first); what a one-trial job fixes to train exactly this configuration."""
    defaults = defaults or {}
    chosen: dict[str, Any] = {}
    for hp in SPACES[kind]:
        if task not in hp.tasks or not is_active(hp.name, chosen, kind):
            continue
        if hp.name in values:
            chosen[hp.name] = values[hp.name]
        elif hp.name in defaults:
            chosen[hp.name] = defaults[hp.name]
        else:
            chosen[hp.name] = hp.searched[0] if hp.searched else hp.default
    return chosen
