"""Hyperparameter importance: the hyperparameter the score depends on explains most of its variance,
the others next to none; the route needs enough completed trials and keeps to the team."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from automl.insight.hyperparameters import MIN_TRIALS, hyperparameter_importance


def _trials(n: int, seed: int = 0) -> tuple[list[dict[str, object]], list[float]]:
    rng = np.random.default_rng(seed)
    trials, scores = [], []
    for _ in range(n):
        lr = float(10 ** rng.uniform(-4, -1))
        trial = {"learning_rate": lr, "activation": str(rng.choice(["relu", "gelu", "selu"])),
                 "num_layers": int(rng.integers(1, 5)), "batch_norm": bool(rng.integers(2))}
        if trial["num_layers"] > 2:  # a conditional hyperparameter, absent from the others
            trial["units_3"] = int(rng.choice([32, 64]))
        trials.append(trial)
        scores.append(abs(np.log10(lr) + 2.5) + rng.normal(scale=0.02))  # best at 3e-3, nothing else matters
    return trials, scores


def test_the_hyperparameter_the_score_depends_on_explains_most_of_it() -> None:
    trials, scores = _trials(40)
    found = hyperparameter_importance(trials, scores)
    assert found[0]["name"] == "learning_rate" and found[0]["importance"] > 0.6
    assert all(h["importance"] < 0.1 for h in found[1:]), found
    assert {h["name"] for h in found} == {"learning_rate", "activation", "num_layers", "batch_norm", "units_3"}
    assert hyperparameter_importance(trials[:MIN_TRIALS - 1], scores[:MIN_TRIALS - 1]) == []


def test_constant_scores_or_hyperparameters_explain_nothing() -> None:
    trials, _ = _trials(10)
    assert all(h["importance"] == 0.0 for h in hyperparameter_importance(trials, [1.0] * 10))
    same = [{"learning_rate": 0.001}] * 6
    assert hyperparameter_importance(same, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == []


def test_the_route(tmp_path: Path) -> None:
    from api import create_app
    from automl.settings import Settings
    from automl.store.records import TrialRecord, utcnow
    from tests.conftest import make_key
    from tests.seed import seed_team, tiny_model

    app = create_app(Settings(data_dir=tmp_path / "var"))
    store = app.extensions["automl"].store
    owned = seed_team(store, "alpha", tiny_model(tmp_path / "models"), tmp_path)
    mine, theirs = app.test_client(), app.test_client()
    mine.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'alpha')}"
    theirs.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'beta')}"
    path = f"/api/v1/jobs/{owned.job}/importance"
    early = mine.get(path)
    assert early.status_code == 409 and "needs at least 4" in early.get_json()["message"]
    trials, scores = _trials(30)
    with store.session() as session:
        for i, (trial, score) in enumerate(zip(trials, scores, strict=True)):
            session.add(TrialRecord(job_id=owned.job, trial_id=f"t{i}", number=i + 1, state="completed",
                                    hyperparameters=trial, score=score, finished_at=utcnow()))
        session.add(TrialRecord(job_id=owned.job, trial_id="failed", number=99, state="failed",
                                hyperparameters={"learning_rate": 1.0}, score=None, finished_at=utcnow()))
    answer = mine.get(path).get_json()
    assert answer["trials"] == 31  # the seeded trial and 30 more; not the failed one
    assert answer["hyperparameters"][0]["name"] == "learning_rate" and answer["objective"] == "val_loss"
    assert theirs.get(path).status_code == 404
