"""Budgets: a deadline stops at epoch boundaries and between trials; a target score ends the search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from automl.search.budget import MAX_TRIALS, TARGET_REACHED, TIME_BUDGET, Budget, search_stop_reason


def test_deadline() -> None:
    past = Budget("val_loss", "min", deadline=datetime.now(UTC) - timedelta(seconds=1))
    future = Budget("val_loss", "min", deadline=datetime.now(UTC) + timedelta(hours=1))
    assert past.epoch_stop_reason({"val_loss": 1.0}) == TIME_BUDGET
    assert future.epoch_stop_reason({"val_loss": 1.0}) is None
    # Between trials the deadline ends the search only once some trial has a score to keep.
    assert search_stop_reason(past, None, 0, 10) is None
    assert search_stop_reason(past, 0.5, 1, 10) == TIME_BUDGET


def test_target_score_respects_direction() -> None:
    maximise = Budget("val_accuracy", "max", target_score=0.9)
    assert maximise.epoch_stop_reason({"val_accuracy": 0.91}) == TARGET_REACHED
    assert maximise.epoch_stop_reason({"val_accuracy": 0.89}) is None
    assert maximise.epoch_stop_reason({"accuracy": 0.99}) is None  # only the objective counts
    minimise = Budget("val_rmse", "min", target_score=3.0)
    assert minimise.epoch_stop_reason({"val_rmse": 2.5}) == TARGET_REACHED
    assert search_stop_reason(minimise, 3.5, 2, 10) is None
    assert search_stop_reason(minimise, 3.0, 2, 10) == TARGET_REACHED
    # With several executions the averaged trial score decides, not one execution's epoch.
    averaged = Budget("val_accuracy", "max", target_score=0.9, stop_on_epoch_target=False)
    assert averaged.epoch_stop_reason({"val_accuracy": 0.95}) is None


def test_max_trials() -> None:
    budget = Budget("val_loss", "min")
    assert search_stop_reason(budget, 0.1, 4, 5) is None
    assert search_stop_reason(budget, 0.1, 5, 5) == MAX_TRIALS


def test_the_final_model_gets_a_reserve_that_follows_the_trials() -> None:
    from automl.search.budget import FINALIZE_OVERHEAD_S, FINE_TUNE_SHARE, finalize_reserve

    assert finalize_reserve(None, [5.0], 3, True) == 0.0  # no budget, nothing to keep
    assert finalize_reserve(60, [], 3, True) == FINALIZE_OVERHEAD_S + 0.5  # before any trial: one model's scoring
    # Refitting up to 3 members takes about as long as their trials did.
    scoring = FINALIZE_OVERHEAD_S + 3 * 0.5  # loading, scoring and saving 3 members
    assert finalize_reserve(300, [4.0, 6.0, 5.0], 3, True) == scoring + 3 * 5.0
    assert finalize_reserve(300, [4.0, 6.0, 5.0], 3, False) == scoring
    assert finalize_reserve(300, [10.0], 3, True) == FINALIZE_OVERHEAD_S + 0.5 + 10.0  # one trial: one member
    # Never more than 40 % (24 s of 60): of three 10 s refits, the first only...
    assert finalize_reserve(60, [10.0, 10.0, 10.0], 3, True) == scoring + 10.0
    # ... and when not even one fits, nothing is held back for a refit that cannot run, only a fine-tune's
    # share of a trial (its passes over every row start from the trial's weights).
    assert finalize_reserve(60, [30.0, 30.0], 3, True) == FINALIZE_OVERHEAD_S + 2 * 0.5 + FINE_TUNE_SHARE * 30.0
    assert finalize_reserve(60, [30.0, 30.0], 3, False) == FINALIZE_OVERHEAD_S + 2 * 0.5
    # Each member retrained up to 4 times (tables' bagging by seed), up to 10 networks with the trials' own
    # 3: 7 retrainings, which fit under 300 s's cap...
    assert finalize_reserve(300, [4.0, 6.0, 5.0], 3, True, retrainings=4) == scoring + 7 * 5.0
    assert finalize_reserve(300, [5.0, 5.0], 2, True, retrainings=4) == FINALIZE_OVERHEAD_S + 1.0 + 8 * 5.0
    # ... under 60 s's (24 s) only 3, as many as without: the extra retrainings never cost a trial there.
    assert finalize_reserve(60, [4.0, 6.0, 5.0], 3, True, retrainings=4) == scoring + 3 * 5.0
    assert finalize_reserve(60, [4.0, 6.0, 5.0], 3, True) == scoring + 3 * 5.0


def test_a_spec_keeps_its_reserve_out_of_the_search() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from automl.search.spec import SearchSpec

    deadline = datetime.now(UTC) + timedelta(seconds=20)
    spec = SearchSpec(job_id="j", dataset_path=Path("/x"), column_types={}, targets=["y"], task="binary",
                      classes=[0, 1], tuner="random", objective="val_log_loss", direction="min", max_trials=9,
                      max_epochs=2, patience=1, seed=0, work_dir=Path("/x"), deadline=deadline)
    assert not spec.budget.time_up()
    # 65.5 s kept (scoring and two retrainings): none for the search.
    assert replace(spec, budget_s=200, trial_seconds=(30.0,)).budget.time_up()
    # A table job's reserve holds its members' retrainings (the retrainings option); an image job's, one each.
    timed = replace(spec, budget_s=300, trial_seconds=(5.0,))
    assert spec.retrainings == 4
    assert timed.budget.deadline == deadline - timedelta(seconds=5.5 + 4 * 5.0)
    assert replace(timed, retrainings=1).budget.deadline == deadline - timedelta(seconds=5.5 + 5.0)
    assert replace(timed, kind="image").budget.deadline == deadline - timedelta(seconds=5.5 + 5.0)


def test_no_trial_starts_that_would_mostly_run_past_the_deadline() -> None:
    from datetime import UTC, datetime, timedelta

    from automl.search.budget import TIME_BUDGET, Budget

    soon = datetime.now(UTC) + timedelta(seconds=10)
    budget = Budget("val_loss", "min", deadline=soon, typical_trial_s=30)
    assert budget.search_stop_reason(best_score=0.5) == TIME_BUDGET  # 10 s left, trials take 30 s
    assert budget.search_stop_reason(best_score=None) is None  # but never without a model yet
    assert Budget("val_loss", "min", deadline=soon, typical_trial_s=5).search_stop_reason(0.5) is None


def test_a_long_first_trial_may_run_on_once_no_refit_of_it_could_fit() -> None:
    import math

    from automl.search.budget import FINALIZE_OVERHEAD_S, FINE_TUNE_SHARE, finalize_reserve

    scoring = FINALIZE_OVERHEAD_S + 0.5
    assert finalize_reserve(60, [], 3, True, running_s=5.0) == scoring + 5.0  # room for its refit
    # Too long to refit within 40 %: room for a fine-tune, a share of the trial's time...
    assert finalize_reserve(60, [], 3, True, running_s=30.0) == scoring + FINE_TUNE_SHARE * 30.0
    # ... of at most the longest trial there can be: one that ends where its own fine-tune's share begins.
    latest = finalize_reserve(60, [], 3, True, running_s=math.inf)
    longest = 60 - latest
    assert latest == pytest.approx(scoring + FINE_TUNE_SHARE * longest)
    assert finalize_reserve(60, [], 3, False, running_s=5.0) == scoring
    # Among finished trials the running one moves the median little.
    assert finalize_reserve(60, [10.0, 10.0], 3, True, running_s=math.inf) == FINALIZE_OVERHEAD_S + 1.5 + 10.0


def test_the_last_trial_may_start_with_less_time_when_no_refit_would_use_it() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from automl.search.budget import FITS, FITS_WITHOUT_REFIT, start_share
    from automl.search.spec import SearchSpec

    assert start_share(60, [5.0], 3, True) == FITS  # the time after the search goes to refits
    assert start_share(60, [30.0], 3, True) == FITS_WITHOUT_REFIT  # no refit fits: only a trial can use it
    assert start_share(60, [5.0], 3, False) == FITS_WITHOUT_REFIT
    assert FITS_WITHOUT_REFIT < FITS
    spec = SearchSpec(job_id="j", dataset_path=Path("/x"), column_types={}, targets=["y"], task="binary",
                      classes=[0, 1], tuner="random", objective="val_log_loss", direction="min", max_trials=9,
                      max_epochs=2, patience=1, seed=0, work_dir=Path("/x"),
                      deadline=datetime.now(UTC) + timedelta(seconds=25), budget_s=60, trial_seconds=(30.0,))
    # 25 s to the deadline, 5.5 s of it kept for the scoring and 7.5 s for a fine-tune: 12 s > 0.3 x 30 s, a
    # trial starts ...
    assert spec.budget.search_stop_reason(best_score=0.5) is None
    # ... where, with a refit ahead, it would not (12 s < 0.6 x 30 s).
    assert replace(spec.budget, fits=FITS).search_stop_reason(best_score=0.5) == "time_budget"
