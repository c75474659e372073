"""Drift: inputs like the training rows do not drift, shifted ones do (PSI, out-of-range and unseen
shares); counts add up across requests and processes; the monitor counts off the request thread and
the route, /metrics and the store agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.insight.drift import MIN_ROWS, THRESHOLD, Counter, merge, report
from automl.insight.profile import shown, training_profile
from automl.preprocessing.features import fit_features, frame_to_inputs

TYPES = {"size": "numeric", "colour": "categorical", "flag": "boolean"}


def _frame(n: int, seed: int, shift: float = 0.0, colours: tuple[str, ...] = ("red", "green", "blue")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"size": rng.normal(10 + shift, 2, n), "colour": rng.choice(colours, n),
                         "flag": rng.uniform(size=n) < 0.3})


@pytest.fixture(scope="module")
def trained() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train = _frame(3000, 0)
    features = fit_features(train, TYPES, set())
    return [f.to_dict() for f in features], training_profile(features, frame_to_inputs(train, features))


def _report(trained: Any, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    features, profile = trained
    from automl.preprocessing.features import FeatureSpec

    counts = Counter(features, profile).count(frame_to_inputs(frame, [FeatureSpec.from_dict(f) for f in features]))
    return {c["name"]: c for c in report(profile, counts)}


def test_inputs_like_the_training_rows_do_not_drift(trained: Any) -> None:
    columns = _report(trained, _frame(1000, 1))
    for column in columns.values():
        assert column["drifted"] is False and column["psi"] < 0.05, column
    assert columns["size"]["out_of_range_share"] == 0.0 and columns["colour"]["unseen_share"] == 0.0


def test_shifted_numbers_and_new_categories_drift(trained: Any) -> None:
    columns = _report(trained, _frame(1000, 2, shift=3.0, colours=("red", "purple")))
    assert columns["size"]["drifted"] and columns["size"]["psi"] > THRESHOLD
    assert columns["colour"]["drifted"] and columns["colour"]["unseen_share"] == pytest.approx(0.5, abs=0.05)
    assert columns["flag"]["drifted"] is False  # unchanged
    far = _report(trained, _frame(200, 3, shift=20.0))["size"]
    assert far["out_of_range_share"] > 0.9 and far["psi"] > 5


def test_new_names_or_identifiers_are_not_unseen_categories() -> None:
    """A column holding a value of its own on every row (an id, a name): every new row brings a new one,
    which is no drift."""
    train = _frame(600, 7).assign(name=[f"n{i}" for i in range(600)])
    features = fit_features(train, {**TYPES, "name": "categorical"}, set())
    dicts = [f.to_dict() for f in features]
    profile = training_profile(features, frame_to_inputs(train, features))
    served = _frame(300, 8).assign(name=[f"new{i}" for i in range(300)])
    columns = {c["name"]: c for c in report(profile, Counter(dicts, profile).count(frame_to_inputs(served, features)))}
    assert columns["name"]["unseen_share"] == 0.0 and columns["name"]["drifted"] is False


def test_a_column_is_judged_only_from_min_rows_on(trained: Any) -> None:
    few = _report(trained, _frame(MIN_ROWS - 1, 4, shift=5.0))["size"]
    assert few["drifted"] is None and few["psi"] > THRESHOLD


def test_counts_add_up_across_requests(trained: Any) -> None:
    features, profile = trained
    from automl.preprocessing.features import FeatureSpec

    specs = [FeatureSpec.from_dict(f) for f in features]
    counter = Counter(features, profile)
    a, b = _frame(300, 5), _frame(500, 6, shift=1.0)
    together = counter.count(frame_to_inputs(pd.concat([a, b]), specs))
    merged = merge(json.loads(json.dumps(counter.count(frame_to_inputs(a, specs)))),
                   counter.count(frame_to_inputs(b, specs)))
    assert merged == together


def _drifting_model(tmp_path: Path) -> tuple[Any, str]:
    """The seeded team's model, with a training profile of 40 rows whose sizes are 0..39."""
    from api import create_app
    from automl.settings import Settings
    from automl.store.records import ModelRecord
    from tests.conftest import make_key
    from tests.seed import SPECS, seed_team, tiny_model

    folder = tiny_model(tmp_path / "models", "alpha-model")  # the folder is named by the model's id
    train = pd.DataFrame({"size": np.arange(40.0), "flag": [True, False] * 20, "colour name": ["red", "blue"] * 20})
    profile = training_profile(SPECS, frame_to_inputs(train, SPECS))
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "profile": profile}))
    # The predict rate limit (1,000 a second per key) is raised: a fast machine can send the full-queue test's
    # 1,029 requests within a second, and a refused request is never counted.
    app = create_app(Settings(data_dir=tmp_path / "var", drift_flush_s=3600, rate_limit_predict="100000/second"))
    store = app.extensions["automl"].store
    owned = seed_team(store, "alpha", folder, tmp_path)
    with store.session() as session:
        record = session.get(ModelRecord, owned.model)
        record.profile = profile
        record.deployed = True
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'alpha')}"
    return client, owned.model


def test_served_inputs_are_counted_and_reported_by_the_route_and_metrics(tmp_path: Path) -> None:
    client, model = _drifting_model(tmp_path)
    assert client.get(f"/api/v1/models/{model}/drift").get_json()["rows"] == 0

    like_training = [{"size": float(i % 40), "flag": i % 2 == 0, "colour name": ["red", "blue"][i % 2]}
                     for i in range(200)]
    assert client.post(f"/api/v1/models/{model}/predict", json={"instances": like_training}).status_code == 200
    answer = client.get(f"/api/v1/models/{model}/drift").get_json()
    assert answer["rows"] == 200 and answer["drifted"] == [] and answer["threshold"] == THRESHOLD
    assert all(c["drifted"] is False for c in answer["columns"])

    shifted = [{"size": 100.0 + i, "flag": True, "colour name": "never seen"} for i in range(800)]
    for start in range(0, 800, 100):  # several requests: their counts add up
        client.post(f"/api/v1/models/{model}/predict_proba", json={"instances": shifted[start:start + 100]})
    answer = client.get(f"/api/v1/models/{model}/drift", query_string={"hours": 1}).get_json()
    assert answer["rows"] == 1000 and set(answer["drifted"]) == {"size", "colour name", "flag"}
    size = next(c for c in answer["columns"] if c["name"] == "size")
    assert size["out_of_range_share"] == pytest.approx(0.8) and size["psi"] > THRESHOLD
    colour = next(c for c in answer["columns"] if c["name"] == "colour name")
    assert colour["unseen_share"] == pytest.approx(0.8)

    metrics = client.get("/metrics").get_data(as_text=True)
    gauges = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
              if line.startswith(("automl_deployed_models_", "automl_input_drift"))}
    assert gauges == {"automl_deployed_models_input_drifted": 1.0, "automl_deployed_models_watched_for_drift": 1.0,
                      "automl_input_drift_psi_max": pytest.approx(max(c["psi"] for c in answer["columns"]))}
    assert model not in metrics and '"size"' not in metrics  # no ids or column names on the open endpoint
    assert client.get(f"/api/v1/models/{model}/drift", query_string={"hours": 0}).status_code == 422


def test_a_full_queue_drops_inputs_rather_than_making_a_prediction_wait(tmp_path: Path) -> None:
    from automl.serving import drift

    client, model = _drifting_model(tmp_path)
    monitor = client.application.extensions["automl"].drift
    monitor._thread, monitor._pid = object(), __import__("os").getpid()  # no counting thread: the queue fills up
    answers = [client.post(f"/api/v1/models/{model}/predict", json={"instances": [{"size": 1.0, "flag": True,
                                                                                 "colour name": "red"}]}).status_code
               for _ in range(drift.QUEUE_BATCHES + 5)]
    assert set(answers) == {200}  # every prediction answered, none waiting on the full queue
    assert monitor.dropped == 5
    assert client.get(f"/api/v1/models/{model}/drift").get_json()["rows"] == drift.QUEUE_BATCHES


def test_counts_of_a_removed_model_are_dropped_without_holding_back_the_others(tmp_path: Path) -> None:
    """A replaced interim model is removed while serving processes may still hold counts for it: they
    are dropped at the next flush, and every other model's counts are written (one transaction each)."""
    from automl.serving.drift import DriftMonitor

    client, model = _drifting_model(tmp_path)
    store = client.application.extensions["automl"].store
    monitor = DriftMonitor(store, flush_s=3600, retention_days=1)
    counts = {"size": {"rows": 2, "missing": 0, "bins": [2], "out_of_range": 0}}
    monitor._totals = {"gone-model": (2, counts), model: (2, json.loads(json.dumps(counts)))}
    assert monitor.flush() is True and monitor._totals == {}
    with store.session() as session:
        from automl.store import catalogue
        from automl.store.records import utcnow

        since = utcnow().replace(minute=0, second=0, microsecond=0)
        assert catalogue.drift_counts_since(session, model, since)[0] == 2
        assert catalogue.drift_counts_since(session, "gone-model", since)[0] == 0


def test_one_row_requests_are_counted_together_and_add_up(trained: Any, tmp_path: Path) -> None:
    """Counting one row costs about as much as counting 64, so the monitor counts what queued up
    between its rounds in one call per model; the totals are those of counting each request."""
    from automl.preprocessing.features import FeatureSpec
    from automl.serving.drift import DriftMonitor
    from automl.store import Store

    features, profile = trained
    specs = [FeatureSpec.from_dict(f) for f in features]
    counter = Counter(features, profile)
    calls: list[int] = []
    original = counter.count

    def counting(inputs: dict[str, Any]) -> dict[str, Any]:
        calls.append(len(next(iter(inputs.values()))))
        return original(inputs)

    counter.count = counting  # type: ignore[method-assign]
    frame = _frame(40, 7, shift=0.5)
    requests = [frame_to_inputs(frame.iloc[[i]], specs) for i in range(len(frame))]

    monitor = DriftMonitor(Store(f"sqlite:///{tmp_path / 'store.db'}"), flush_s=3600, retention_days=1)
    for inputs in requests:
        monitor._queue.put_nowait(("model-a", counter, inputs))  # as observe() queues them
    monitor._count_queued()
    assert calls == [40]  # one call for the 40 one-row requests
    rows, counts = monitor._totals["model-a"]
    one_by_one: dict[str, Any] = {}
    for inputs in requests:
        one_by_one = merge(one_by_one, original(inputs))
    assert rows == 40 and counts == json.loads(json.dumps(one_by_one))


def test_dates_drift_like_numbers_when_requests_come_from_a_later_period() -> None:
    """A datetime column is profiled and counted over its days: rows from the training period do not
    drift, rows from a year later are out of range and do."""
    rng = np.random.default_rng(4)
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, 3000), unit="D")
    train = pd.DataFrame({"when": days.strftime("%Y-%m-%d"), "size": rng.normal(10, 2, 3000)})
    features = fit_features(train, {"when": "datetime", "size": "numeric"}, set())
    trained = ([f.to_dict() for f in features], training_profile(features, frame_to_inputs(train, features)))
    assert trained[1][0]["kind"] == "datetime" and trained[1][0]["bins"]["edges"]
    same = _report(trained, train.sample(1000, random_state=1))["when"]
    assert same["drifted"] is False and same["out_of_range_share"] == 0.0
    later = train.assign(when=(days + pd.Timedelta(days=730)).strftime("%Y-%m-%d")).head(500)
    moved = _report(trained, later)["when"]
    assert moved["drifted"] is True and moved["out_of_range_share"] == 1.0
    # Users read the profile's dates as dates; the stored numbers (what drift counts in) stay numbers.
    when = shown(trained[1])[0]
    assert when["min"] == "2023-01-01" and when["max"] == "2023-12-31" and trained[1][0]["min"] == 19358.0
    assert all(len(q) == 10 or "T" in q for q in when["quantiles"]) and len(when["quantiles"]) == 11
    assert [e[:4] for e in when["bins"]["edges"]] == ["2023"] * len(when["bins"]["edges"])
    assert shown(trained[1])[1] == trained[1][1]  # a number column is shown as it is
