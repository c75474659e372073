"""The serving path: the compiled call, the model cache, batch scoring, deploy and readiness.

A real (tiny, untrained) Keras model with numeric, boolean and categorical inputs built by
the service's own preprocessing layers, saved and loaded as the registry does.
"""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask

import api.app as app_module
from api import create_app
from automl.errors import InvalidInstances
from automl.serving import cache as cache_module
from automl.serving import compiled as compiled_module
from automl.serving.adapters import json_instances
from automl.serving.batch import escape_formula, score_file
from automl.serving.cache import ModelCache
from automl.serving.predictor import Predictor
from automl.settings import Settings
from automl.store import Store, catalogue
from automl.store.records import ModelRecord, utcnow
from tests.conftest import SAME_MODEL, add_job, client_for
from tests.seed import CLASSES, SPECS, tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Predictor:
    return Predictor(model_dir)


def frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    size = rng.normal(5, 2, n).round(3).astype(object)
    size[::7] = None
    return pd.DataFrame({
        "id": [f"=HYPERLINK(\"x\",\"{i}\")" if i == 0 else f"row-{i}" for i in range(n)],
        "size": size,
        "flag": rng.choice(["yes", "no", "true", None], n),
        "colour name": rng.choice(["red", "blue", "green", None], n),
        "unused": range(n),
    })


def records(data: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items() if k in ("size", "flag", "colour name")}
            for row in data.to_dict("records")]


def score(predictor: Predictor, tmp_path: Path, content: bytes, name: str = "rows.csv", **options: Any) -> Any:
    path = tmp_path / name
    path.write_bytes(content)
    options = {"proba": False, "output": "csv", "passthrough": [], "tmp_dir": tmp_path, **options}
    scored = score_file(predictor, path, name, **options)
    with scored.handle:
        return scored, scored.handle.read()


# --- compiled call --------------------------------------------------------------------------------


def test_compiled_call_matches_keras_for_any_batch_size(predictor: Predictor,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = json_instances(predictor, records(frame(50))).inputs
    expected = np.asarray(predictor.model.predict_on_batch(inputs))
    np.testing.assert_allclose(predictor.call(inputs), expected, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(compiled_module, "MAX_CALL_ROWS", 7)  # 50 rows in 8 slices
    np.testing.assert_allclose(predictor.call(inputs), expected, rtol=1e-5, atol=1e-6)
    single = json_instances(predictor, records(frame(50))[:1]).inputs
    np.testing.assert_allclose(predictor.call(single), expected[:1], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def numeric_predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """A model whose inputs are all numbers (no string column), which XLA can compile."""
    numbers = [spec for spec in SPECS if spec.kind != "categorical"]
    return Predictor(tiny_model(tmp_path_factory.mktemp("numeric"), "numeric", numbers))


def numeric_inputs(predictor: Predictor, n: int) -> dict[str, np.ndarray]:
    rows = [{k: v for k, v in row.items() if k != "colour name"} for row in records(frame(n))]
    return json_instances(predictor, rows).inputs


def test_xla_serves_numeric_models_padded_to_compiled_sizes(numeric_predictor: Predictor) -> None:
    call = numeric_predictor.call
    assert call.uses_xla and call.wait_compiled(1)  # the one-row size starts compiling at load
    assert call.compiled_sizes == {1}
    inputs = numeric_inputs(numeric_predictor, 50)
    expected = np.asarray(numeric_predictor.model.predict_on_batch(inputs))
    # 50 rows: size 64 is not compiled yet, so the plain function answers and a thread compiles it
    np.testing.assert_allclose(call(inputs), expected, rtol=1e-5, atol=1e-6)
    assert call.wait_compiled(50) and 64 in call.compiled_sizes
    # now through XLA, the 50 rows padded to 64 and the padding cut off the answer
    np.testing.assert_allclose(call(inputs), expected, rtol=1e-5, atol=1e-6)
    for n in (1, 3):
        assert call.wait_compiled(n)
        part = {key: value[:n] for key, value in inputs.items()}
        np.testing.assert_allclose(call(part), expected[:n], rtol=1e-5, atol=1e-6)
    assert call.compiled_sizes == {1, 4, 64}
    assert [compiled_module.bucket(n) for n in (1, 2, 3, 4, 5, 16_384)] == [1, 2, 4, 4, 8, 16_384]


def test_the_flat_call_relied_on_exists_and_answers_as_the_public_call() -> None:
    import tensorflow as tf

    concrete = tf.function(lambda x: x * 2.0, input_signature=[tf.TensorSpec((None, 1))]).get_concrete_function()
    assert callable(getattr(concrete, "_call_flat", None)), "TensorFlow no longer has ConcreteFunction._call_flat"
    x = tf.constant([[1.0], [2.5]])
    np.testing.assert_array_equal(compiled_module.flat_caller(concrete)([x]), concrete(x))


def test_models_with_categories_are_served_through_category_indices(predictor: Predictor) -> None:
    """The lookups happen in NumPy and the rest through XLA; unseen and missing categories answer as before."""
    call = predictor.call
    assert call.uses_xla and call.category_code_columns == {"colour_name"}
    data = records(frame(50))
    assert {r["colour name"] for r in data} == {"red", "blue", "green", None}  # green: never seen in training
    inputs = json_instances(predictor, data).inputs
    expected = np.asarray(predictor.model.predict_on_batch(inputs))  # the saved model, on its strings
    assert call.wait_compiled(50) and call.wait_compiled(3)
    np.testing.assert_allclose(call(inputs), expected, rtol=1e-5, atol=1e-6)
    part = {key: value[:3] for key, value in inputs.items()}
    np.testing.assert_allclose(call(part), expected[:3], rtol=1e-5, atol=1e-6)


def test_calibrated_and_ensemble_models_with_categories_get_category_indices(model_dir: Path) -> None:
    from automl.hypermodels.calibration import with_temperature
    from automl.hypermodels.ensemble import build_ensemble
    from automl.registry import load_keras_model

    first, second = load_keras_model(model_dir), load_keras_model(model_dir)
    ensemble = build_ensemble([with_temperature(first, 1.7, "binary"), second], [0.3, 0.7])
    call = compiled_module.CompiledCall(ensemble)
    assert call.uses_xla and call.category_code_columns == {"colour_name"}
    inputs = json_instances(Predictor(model_dir), records(frame(40))).inputs
    assert call.wait_compiled(40)
    np.testing.assert_allclose(call(inputs), np.asarray(ensemble.predict_on_batch(inputs)), rtol=1e-5, atol=1e-6)


def test_models_the_lookup_cannot_be_taken_out_of_keep_their_strings(predictor: Predictor) -> None:
    import keras

    inputs = {"size": keras.Input((1,), name="size"), "colour": keras.Input((1,), name="colour", dtype="string")}
    looked_up = keras.layers.StringLookup(vocabulary=["red", "blue"], output_mode="one_hot", name="colours")(
        inputs["colour"])  # not named <input>_lookup, as the service's models are
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Concatenate()([inputs["size"], looked_up])))
    call = compiled_module.CompiledCall(model)
    assert not call.uses_xla and call.category_code_columns == frozenset()
    rows = {"size": np.array([[1.0], [2.0]], dtype="float32"), "colour": np.array([["blue"], ["grey"]], dtype=object)}
    np.testing.assert_allclose(call(rows), np.asarray(model.predict_on_batch(rows)), rtol=1e-5, atol=1e-6)
    assert not compiled_module.CompiledCall(predictor.model, xla=False).uses_xla


def test_serving_xla_is_a_setting(tmp_path: Path, model_dir: Path) -> None:
    for xla in (True, False):
        app = create_app(Settings(data_dir=tmp_path / f"var-{xla}", serving_xla=xla))
        loaded = app.extensions["automl"].models.get("m1", model_dir)
        assert loaded.call.uses_xla is xla and bool(loaded.call.category_code_columns) is xla


def test_a_model_xla_cannot_compile_is_served_without_it() -> None:
    import keras
    import tensorflow as tf

    class ThroughText(keras.layers.Layer):  # string ops on numbers: no XLA kernel for them
        def call(self, x: Any) -> Any:
            return tf.strings.to_number(tf.strings.as_string(x)) * 2.0

    inputs = {"a": keras.Input((1,), name="a"), "b": keras.Input((1,), name="b")}
    model = keras.Model(inputs, ThroughText()(keras.layers.Concatenate()([inputs["a"], inputs["b"]])))
    call = compiled_module.CompiledCall(model)
    assert not call.wait_compiled(1)
    assert not call.uses_xla and call.compiled_sizes == set()
    rows = {"a": np.array([[1.5], [2.0]], dtype="float32"), "b": np.array([[3.0], [-1.0]], dtype="float32")}
    np.testing.assert_allclose(call(rows), [[3.0, 6.0], [4.0, -2.0]])


EXITS_WHILE_COMPILING = """
import atexit
# Registered before the module's own hook, so it runs after it (atexit runs last-registered first).
atexit.register(lambda: print("compiled at exit:", sorted(CALL.compiled_sizes), flush=True))
import keras
from automl.serving import compiled
inputs = {"a": keras.Input((1,), name="a"), "b": keras.Input((1,), name="b")}
model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Concatenate()([inputs["a"], inputs["b"]])))
CALL = compiled.CompiledCall(model)
for power in range(1, 13):
    CALL._compile_later(2 ** power)
print("leaving with", sorted(CALL.compiled_sizes), "compiled", flush=True)
"""


def test_a_process_that_exits_while_xla_compiles_waits_for_the_compilations() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EXITS_WHILE_COMPILING], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LLVM ERROR" not in done.stderr
    leaving = next(line for line in done.stdout.splitlines() if line.startswith("leaving with"))
    assert leaving != "leaving with [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096] compiled"  # still running
    assert "compiled at exit: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]" in done.stdout


# --- cache ---------------------------------------------------------------------------------------


class CountingLoader:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[Path] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, path: Path) -> Any:
        with self.lock:
            self.calls.append(path)
        time.sleep(self.delay)
        if path.name == "broken":
            raise OSError("unreadable model")
        return object()


def test_cache_evicts_the_least_recently_used_and_never_a_pinned_model() -> None:
    loader = CountingLoader()
    cache = ModelCache(2, loader=loader)  # type: ignore[arg-type]
    a = cache.get("a", Path("a"))
    cache.get("b", Path("b"))
    assert cache.get("a", Path("a")) is a  # a is now the most recently used
    cache.get("c", Path("c"))
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.peek("b") is None and cache.peek("a") is a
    cache.get("p", Path("p"), pin=True)
    cache.get("q", Path("q"), pin=True)
    cache.get("d", Path("d"))
    cache.get("e", Path("e"))
    assert {"p", "q", "d", "e"} <= {k for k in "abcdepq" if k in cache} and len(cache) == 4
    cache.unpin("p")  # three unpinned now: the least recently used of them goes
    assert "p" not in cache and len(cache) == 3
    assert len(loader.calls) == 7  # every model loaded exactly once so far


def test_cache_loads_a_model_once_under_concurrent_first_requests() -> None:
    loader = CountingLoader(delay=0.2)
    cache = ModelCache(5, loader=loader)  # room for all: an eviction would legitimately cause a reload
    results: list[tuple[str, Any]] = []
    barrier = threading.Barrier(16)

    def ask(model_id: str) -> None:
        barrier.wait()
        results.append((model_id, cache.get(model_id, Path(model_id))))

    threads = [threading.Thread(target=ask, args=("m" if i < 12 else f"x{i}",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [path.name for path in loader.calls].count("m") == 1  # 12 concurrent first requests, one load
    assert len({id(obj) for model_id, obj in results if model_id == "m"}) == 1
    assert len(loader.calls) == 5 and len(cache) == 5  # the others loaded side by side, once each


def test_a_failed_load_is_not_cached_and_leaves_no_pin() -> None:
    cache = ModelCache(2, loader=CountingLoader())  # type: ignore[arg-type]
    with pytest.raises(OSError):
        cache.get("x", Path("broken"), pin=True)
    assert "x" not in cache and cache.pinned == set()


# --- batch scoring ------------------------------------------------------------------------------


def test_csv_scored_in_chunks_matches_json_predictions(predictor: Predictor, tmp_path: Path) -> None:
    data = frame(50)
    expected, _ = predictor.predict(json_instances(predictor, records(data)))
    scored, body = score(predictor, tmp_path, data.to_csv(index=False).encode(), chunk_rows=7,
                         passthrough=["id"])
    assert scored.rows == 50 and scored.media_type == "text/csv"
    out = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    assert list(out.columns) == ["id", "prediction"]
    assert out["id"][0] == "'" + data["id"][0] and out["id"][1] == "row-1"  # formula escaped, plain text not
    assert list(out["prediction"]) == [escape_formula(label) for label in expected]
    assert set(out["prediction"]) == {"no", "'=SUM(A1)"}  # both classes occur, the formula one escaped


def test_parquet_in_json_out_has_the_json_endpoints_shape(predictor: Predictor, tmp_path: Path) -> None:
    data = frame(30)
    data["size"] = pd.to_numeric(data["size"])
    expected = predictor.probabilities(json_instances(predictor, records(data))).mean
    scored, body = score(predictor, tmp_path, data.to_parquet(index=False), "rows.parquet", proba=True,
                         output="json", chunk_rows=8)
    document = json.loads(body)
    assert scored.media_type == "application/json" and document["classes"] == CLASSES
    np.testing.assert_allclose(np.array(document["probabilities"]), expected, **SAME_MODEL)


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d.drop(columns=["flag"]), "lacks the model's input column(s): flag"),
    (lambda d: d.assign(size=["12", "x"] + ["1"] * 18), "row 2, column size"),
    (lambda d: d.assign(size=["1"] * 16 + ["inf"] + ["1"] * 3), "row 17, column size"),
    (lambda d: d.assign(size=["1"] * 3 + ["1e39"] + ["1"] * 16), "row 4, column size"),  # inf in float32
    (lambda d: d.assign(flag=["yes"] * 13 + ["maybe"] + ["no"] * 6), "row 14, column flag"),
    (lambda d: d.iloc[:0], "no data rows"),
])
def test_bad_files_are_422_naming_the_row_and_column(predictor: Predictor, tmp_path: Path, edit: Any,
                                                     needle: str) -> None:
    content = edit(frame(20)).to_csv(index=False).encode()
    with pytest.raises(InvalidInstances) as caught:
        score(predictor, tmp_path, content, chunk_rows=5)
    assert needle in caught.value.message
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]  # the half-written answer is gone


def test_passthrough_rules(predictor: Predictor, tmp_path: Path) -> None:
    content = frame(5).rename(columns={"unused": "prediction"}).to_csv(index=False).encode()
    with pytest.raises(InvalidInstances, match="clash"):
        score(predictor, tmp_path, content, passthrough=["prediction"])
    with pytest.raises(InvalidInstances, match=r"not in 'rows\.csv': nope"):
        score(predictor, tmp_path, content, passthrough=["nope"])
    with pytest.raises(InvalidInstances, match="CSV output only"):
        score(predictor, tmp_path, content, passthrough=["id"], output="json")


def test_formula_escaping() -> None:
    assert escape_formula("=1+2") == "'=1+2"
    assert escape_formula("@SUM(A1)") == "'@SUM(A1)"
    assert escape_formula("-2+3+cmd|' /C calc'!A0") == "'-2+3+cmd|' /C calc'!A0"
    assert escape_formula("\tx") == "'\tx"
    assert escape_formula("-1.5") == "-1.5" and escape_formula("+3e5") == "+3e5"
    assert escape_formula("plain") == "plain" and escape_formula(-3) == -3


# --- deploy and readiness -------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Flask, threading.Event]:
    """The app over a store holding a deployed model (m1), a deployed model whose files are gone (gone),
    a ready undeployed one (m2) and one still training (t); model loads wait for the returned gate."""
    settings = Settings(data_dir=tmp_path / "var")  # embedded SQLite broker: reachable
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    with store.session() as session:
        add_job(session, target="label")
        for model_id, state, path, deployed in (("m1", "ready", model_dir, True), ("gone", "ready", tmp_path, True),
                                                ("m2", "ready", model_dir, False), ("t", "training", None, False)):
            session.add(ModelRecord(id=model_id, job_id="j", dataset_id="d", task="binary", target="label",
                                    state=state, path=str(path) if path else None, deployed=deployed,
                                    deployed_at=utcnow() if deployed else None))
    gate = threading.Event()
    real_loader = cache_module.predictor_loader(settings.serving_threads)

    def gated(path: Path) -> Predictor:
        assert gate.wait(60)
        return real_loader(path)

    monkeypatch.setattr(app_module, "predictor_loader", lambda threads, xla: gated)
    return create_app(settings), gate


def test_readiness_waits_for_deployed_models_to_load(served: tuple[Flask, threading.Event]) -> None:
    app, gate = served
    client = client_for(app)
    deadline = time.monotonic() + 30
    while not (warming := client.get("/readyz")).get_json()["listed"] and time.monotonic() < deadline:
        assert warming.status_code == 503 and "Looking up" in warming.get_json()["message"]
        time.sleep(0.05)
    assert warming.status_code == 503 and warming.get_json()["status"] == "not_ready"
    assert "0 of 2 loaded" in warming.get_json()["message"]
    assert client.get("/healthz").status_code == 200  # alive meanwhile
    gate.set()
    services = app.extensions["automl"]
    assert services.warmup.wait(60)
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["loaded"] == 1 and ready["deployed_models"] == 2
    assert ready["failed"] == 1  # counted, and not holding the process out of service
    assert "gone" not in json.dumps(ready)  # no model id or exception text on an unauthenticated probe
    assert list(services.warmup.status()["failed"]) == ["gone"]  # the process itself knows which
    assert services.models.pinned == {"m1"} and services.models.peek("m1") is not None
    answer = client.post("/api/v1/models/m1/predict", json={"instances": records(frame(3))})
    assert answer.status_code == 200 and len(answer.get_json()["predictions"]) == 3


def test_deploy_and_undeploy(served: tuple[Flask, threading.Event]) -> None:
    app, gate = served
    gate.set()
    client = client_for(app)
    services = app.extensions["automl"]
    assert services.warmup.wait(60)
    assert client.post("/api/v1/models/t/deploy").status_code == 409
    assert client.post("/api/v1/models/nope/deploy").status_code == 404
    deployed = client.post("/api/v1/models/m2/deploy")
    assert deployed.status_code == 200 and deployed.get_json()["deployed"] and deployed.get_json()["deployed_at"]
    assert "m2" in services.models.pinned and services.models.peek("m2") is not None  # loaded before answering
    listed = client.get("/api/v1/models?deployed=true").get_json()
    assert sorted(m["id"] for m in listed) == ["gone", "m1", "m2"]
    undeployed = client.delete("/api/v1/models/m1/deploy")
    assert undeployed.status_code == 200 and not undeployed.get_json()["deployed"]
    assert "m1" not in services.models.pinned
    assert client.get("/readyz").get_json()["deployed_models"] == 2
    assert client.put("/api/v1/aliases/prod", json={"model_id": "m1"}).status_code == 201
    assert client.post("/api/v1/models/prod/deploy").get_json()["id"] == "m1"  # by alias
    assert "m1" in services.models.pinned


def test_running_processes_follow_deploys_made_elsewhere(served: tuple[Flask, threading.Event]) -> None:
    app, gate = served
    gate.set()
    services = app.extensions["automl"]
    assert services.warmup.wait(60)
    with services.store.session() as session:  # as another serving process would
        catalogue.set_deployed(session, catalogue.get_model(session, "m2"), True)
        catalogue.set_deployed(session, catalogue.get_model(session, "m1"), False)
    services.warmup.refresh()
    assert services.models.pinned == {"m2"} and services.models.peek("m2") is not None
    assert services.warmup.status()["deployed_models"] == 2  # m2 and the unloadable "gone"


def test_deployed_models_past_the_memory_budget_are_not_pinned(tmp_path: Path, model_dir: Path) -> None:
    from automl.serving.cache import ModelCache
    from automl.serving.warmup import Warmup, estimated_bytes

    settings = Settings(data_dir=tmp_path / "var")
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    with store.session() as session:
        add_job(session, target="label")
        for i, model_id in enumerate(("first", "second")):  # deployed in this order
            session.add(ModelRecord(id=model_id, job_id="j", dataset_id="d", task="binary", target="label",
                                    state="ready", path=str(model_dir), deployed=True,
                                    deployed_at=utcnow() + timedelta(seconds=i)))
    one = estimated_bytes(model_dir)
    assert one > 0
    cache = ModelCache(4)
    warmup = Warmup(store, cache, memory_budget_bytes=int(1.5 * one))
    warmup.run()  # refresh_s 0: loads once and returns
    status = warmup.status()
    assert status["ready"] and status["loaded"] == 1 and status["over_budget"] == 1 and not status["failed"]
    assert cache.pinned == {"first"} and cache.peek("second") is None  # not loaded at start
    assert cache.get("second", model_dir) is not None and "second" not in cache.pinned  # on first use
    with store.session() as session:  # the first is undeployed (by any process): room for the second
        catalogue.set_deployed(session, catalogue.get_model(session, "first"), False)
    warmup.refresh()
    assert cache.pinned == {"second"} and warmup.status()["over_budget"] == 0
    unlimited = Warmup(store, ModelCache(4))
    unlimited.run()
    assert unlimited.status()["over_budget"] == 0
