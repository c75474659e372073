"""The starting portfolio: how it is chosen, and that the shipped one is valid for every task."""

from __future__ import annotations

import json

import pytest

from automl.hypermodels.narrowing import normalize_overrides
from automl.hypermodels.space import SPACE_BY_KIND
from automl.search import portfolio
from benchmarks.portfolio import CANDIDATES, IMAGE_CANDIDATES, anytime_error, budget_greedy, scaled_errors


def test_selection_adds_what_covers_the_tables_the_first_entry_misses() -> None:
    scaled = {  # table -> candidate -> scaled error (0 best, 1 worst)
        "t1": {"generalist": 0.2, "specialist": 0.0, "useless": 1.0},
        "t2": {"generalist": 0.2, "specialist": 1.0, "useless": 0.9},
        "t3": {"generalist": 0.3, "specialist": 1.0, "useless": 0.5},
    }
    seconds = {t: dict.fromkeys(errors, 10.0) for t, errors in scaled.items()}  # every trial alike
    chosen = budget_greedy(scaled, seconds, ["generalist", "specialist", "useless"], size=3)
    assert [name for name, _ in chosen] == ["generalist", "specialist"]  # "useless" helps on no table
    assert chosen[1][1] < chosen[0][1]  # each entry lowers the error


def test_selection_weighs_time_where_a_budget_holds_few_trials() -> None:
    # "slow" alone is a little better than "fast", but takes ten trials' time: with it first, nothing else
    # finishes within eight trials. "fast" then "other" do better on every budget of two trials or more.
    scaled = {"t1": {"slow": 0.0, "fast": 0.1, "other": 0.05},
              "t2": {"slow": 0.1, "fast": 0.02, "other": 0.1}}
    seconds = {t: {"slow": 10.0, "fast": 1.0, "other": 1.0} for t in scaled}
    assert anytime_error(["slow"], scaled, seconds) < anytime_error(["fast"], scaled, seconds)
    chosen = budget_greedy(scaled, seconds, ["slow", "fast", "other"], size=3)
    assert [name for name, _ in chosen][:2] == ["fast", "other"]
    # Budgets of whole trials: "slow" after the two fast ones finishes within none of them (12 > 8 trials).
    assert anytime_error(["fast", "other", "slow"], scaled, seconds) == anytime_error(["fast", "other"], scaled,
                                                                                     seconds)
    # With all the time in the world, order does not matter: the error is that of the best entry per table.
    assert anytime_error(["slow", "fast"], scaled, seconds, budgets=(100,)) == pytest.approx((0.0 + 0.02) / 2)
    assert anytime_error(["fast", "slow"], scaled, seconds, budgets=(100,)) == pytest.approx((0.0 + 0.02) / 2)


def test_scaled_errors_need_every_candidate_on_a_table() -> None:
    rows = [{"table": "a", "candidate": name, "score": score, "values": CANDIDATES[name]}
            for name, score in zip(sorted(CANDIDATES), range(len(CANDIDATES)), strict=False)]
    rows.append({"table": "b", "candidate": sorted(CANDIDATES)[0], "score": 1.0,
                 "values": CANDIDATES[sorted(CANDIDATES)[0]]})
    scaled = scaled_errors(rows, sorted(CANDIDATES))
    assert set(scaled) == {"a"}  # table b has one candidate's result only
    best = max(range(len(CANDIDATES)))
    assert scaled["a"][sorted(CANDIDATES)[best]] == 0.0 and scaled["a"][sorted(CANDIDATES)[0]] == 1.0


def test_the_shipped_portfolio_was_chosen_by_the_script_from_its_candidates() -> None:
    data = json.loads(portfolio.PORTFOLIO_FILE.read_text())
    assert data["tabular_selection"]["generated_by"] == "benchmarks/portfolio.py select"
    assert 2 <= len(data["tabular"]) <= 8
    for entry in data["tabular"]:
        assert entry["values"] == CANDIDATES[entry["name"]]
    errors = [entry["mean_scaled_error_with_earlier"] for entry in data["tabular"]]
    assert errors == sorted(errors, reverse=True)  # each entry helps
    measured = [e for e in data["image"] if e["measured"]]
    assert measured and all(e["values"] == IMAGE_CANDIDATES[e["name"]] for e in measured)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "regression"])
def test_every_entry_is_a_valid_configuration_for_every_task(task: str) -> None:
    entries = portfolio.entries("tabular", task)
    assert entries
    for values in entries:
        assert set(values) <= set(SPACE_BY_KIND["tabular"])
        full = portfolio.full_assignment(values, task, "tabular", {"batch_size": 64})
        normalize_overrides(full, task)  # a 422 if any value were outside the space
        assert full["batch_size"] == 64 or "batch_size" in values  # the data's default unless the entry says
        if task != "regression":
            assert "target_transform" not in full
        if task not in ("binary", "multiclass"):
            assert "label_smoothing" not in full


def test_image_entries_are_valid_image_configurations() -> None:
    for values in portfolio.entries("image", "multiclass"):
        normalize_overrides(portfolio.full_assignment(values, "multiclass", "image"), "multiclass", "image")
