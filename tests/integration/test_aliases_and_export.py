"""Aliases, TensorFlow Serving's REST form, and export as .keras and SavedModel (loaded back with plain TF)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from api.resources.models.schemas import MAX_INSTANCES
from tests.conftest import SAME_MODEL
from tests.integration.conftest import Service

pytestmark = pytest.mark.integration

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]


@pytest.fixture(scope="module")
def model_id(penguins_model: str) -> str:
    return penguins_model


@pytest.fixture(scope="module")
def other_model_id(distributed: Service, model_id: str) -> str:
    """A second penguins model (another seed, fewer epochs): different probabilities to move an alias to."""
    from tests.integration.conftest import submit

    dataset_id = distributed.http.get(f"{distributed.url}/api/v1/models/{model_id}", timeout=10).json()["dataset_id"]
    job = submit(distributed, dataset_id=dataset_id, target="species", tuner="random", max_trials=1, max_epochs=2,
                 seed=5, ensemble_size=0, refit=False, search_space={"num_layers": 1, "dropout": 0.0, "units": 16})
    finished = distributed.wait_for_job(job["id"])
    assert finished["state"] == "succeeded", finished
    return str(finished["model_id"])


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    from palmerpenguins import load_penguins

    frame = load_penguins().dropna().sample(5, random_state=0)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame[FEATURES].to_dict("records")]


def _proba(service: Service, ref: str, rows: list[dict[str, Any]]) -> np.ndarray:
    response = service.http.post(f"{service.url}/api/v1/models/{ref}/predict_proba", json={"instances": rows},
                                     timeout=30)
    assert response.status_code == 200, response.text
    return np.array(response.json()["probabilities"])


def test_aliases_point_stable_names_at_models(distributed: Service, model_id: str, other_model_id: str,
                                              rows: list[dict[str, Any]]) -> None:
    url = f"{distributed.url}/api/v1/aliases"
    created = distributed.http.put(f"{url}/penguins-prod", json={"model_id": model_id}, timeout=10)
    assert created.status_code == 201 and created.json()["model_id"] == model_id
    assert distributed.http.get(f"{url}/penguins-prod", timeout=10).json()["model_id"] == model_id
    first, other = _proba(distributed, model_id, rows), _proba(distributed, other_model_id, rows)
    assert not np.allclose(first, other, atol=1e-3)  # so that serving one for the other would show
    np.testing.assert_allclose(_proba(distributed, "penguins-prod", rows), first, **SAME_MODEL)
    card = distributed.http.get(f"{distributed.url}/api/v1/models/penguins-prod", timeout=10).json()
    assert card["id"] == model_id
    # Moving the alias moves what it serves, at once, in every serving process (aliases are looked up per call).
    moved = distributed.http.put(f"{url}/penguins-prod", json={"model_id": other_model_id}, timeout=10)
    assert moved.status_code == 200 and moved.json()["model_id"] == other_model_id
    assert moved.json()["created_at"] == created.json()["created_at"]
    for _ in range(4):  # keep-alive or not, whichever process answers
        np.testing.assert_allclose(_proba(distributed, "penguins-prod", rows), other, **SAME_MODEL)
    assert distributed.http.get(f"{distributed.url}/api/v1/models/penguins-prod", timeout=10).json()["id"] == \
        other_model_id
    assert [a["name"] for a in distributed.http.get(url, timeout=10).json()] == ["penguins-prod"]

    bad = distributed.http.put(f"{url}/..%2Fetc", json={"model_id": model_id}, timeout=10)
    assert bad.status_code in (404, 422)  # a path separator never becomes part of a name
    assert [a["name"] for a in distributed.http.get(url, timeout=10).json()] == ["penguins-prod"]
    for name in ("-starts-with-dash", "a" * 65, "0123456789abcdef0123456789abcdef"):
        refused = distributed.http.put(f"{url}/{name}", json={"model_id": model_id}, timeout=10)
        assert refused.status_code == 422 and "not allowed" in refused.json()["message"], name
    unknown = distributed.http.put(f"{url}/other", json={"model_id": "f" * 32}, timeout=10)
    assert unknown.status_code == 404 and "No model" in unknown.json()["message"]
    assert distributed.http.delete(f"{url}/penguins-prod", timeout=10).status_code == 204
    gone = distributed.http.get(f"{distributed.url}/api/v1/models/penguins-prod", timeout=10)
    assert gone.status_code == 404 and "No model with id or alias" in gone.json()["message"]


def test_tensorflow_serving_rest_form(distributed: Service, model_id: str, rows: list[dict[str, Any]]) -> None:
    assert distributed.http.put(f"{distributed.url}/api/v1/aliases/penguins-tfs", json={"model_id": model_id},
                                timeout=10).status_code == 201
    status = distributed.http.get(f"{distributed.url}/v1/models/penguins-tfs", timeout=10).json()
    assert status == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                 "status": {"error_code": "OK", "error_message": ""}}]}
    expected = _proba(distributed, model_id, rows)
    by_rows = distributed.http.post(f"{distributed.url}/v1/models/penguins-tfs:predict", json={"instances": rows},
                                            timeout=30)
    assert by_rows.status_code == 200, by_rows.text
    np.testing.assert_allclose(by_rows.json()["predictions"], expected, **SAME_MODEL)
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    by_columns = distributed.http.post(f"{distributed.url}/v1/models/{model_id}:predict", json={"inputs": columns},
                                       timeout=30)
    assert by_columns.status_code == 200, by_columns.text
    np.testing.assert_allclose(by_columns.json()["predictions"], expected, **SAME_MODEL)

    both = distributed.http.post(f"{distributed.url}/v1/models/{model_id}:predict",
                                 json={"instances": rows, "inputs": columns}, timeout=10)
    assert both.status_code == 422 and "exactly one" in both.json()["message"]
    ragged = distributed.http.post(f"{distributed.url}/v1/models/{model_id}:predict",
                                   json={"inputs": {"island": ["Biscoe"], "year": [2007, 2008]}}, timeout=10)
    assert ragged.status_code == 422 and "same number" in ragged.json()["message"]
    # `inputs` obeys the row limit `instances` has, in both its forms, before any row is built.
    for too_many in ({"island": ["Biscoe"] * (MAX_INSTANCES + 1)}, [1] * (MAX_INSTANCES + 1)):
        refused = distributed.http.post(f"{distributed.url}/v1/models/{model_id}:predict", json={"inputs": too_many},
                                        timeout=30)
        assert refused.status_code == 422, refused.text
        assert f"at most {MAX_INSTANCES}" in refused.json()["message"]
    missing = distributed.http.post(f"{distributed.url}/v1/models/nope:predict", json={"instances": rows}, timeout=10)
    assert missing.status_code == 404


def test_export_as_keras_and_savedmodel(distributed: Service, model_id: str, rows: list[dict[str, Any]],
                                        tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    from automl.registry import register_custom_objects

    register_custom_objects()  # the service's own layers, for the .keras file

    expected = _proba(distributed, model_id, rows)
    frame = pd.DataFrame(rows)

    keras_file = distributed.http.get(f"{distributed.url}/api/v1/models/{model_id}/download", timeout=60)
    assert keras_file.status_code == 200 and "attachment" in keras_file.headers["Content-Disposition"]
    (tmp_path / "model.keras").write_bytes(keras_file.content)
    model = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    columns = {inp.name: (frame[inp.name].astype("float32").to_numpy().reshape(-1, 1) if inp.dtype == "float32"
                          else frame[inp.name].astype(str).to_numpy().reshape(-1, 1).astype(object))
               for inp in model.inputs}
    np.testing.assert_allclose(np.asarray(model.predict_on_batch(columns)), expected, rtol=1e-5)

    archive = distributed.http.get(f"{distributed.url}/api/v1/models/{model_id}/download",
                                           params={"format": "savedmodel"}, timeout=120)
    assert archive.status_code == 200 and archive.headers["Content-Type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(archive.content)).extractall(tmp_path / "serving")
    assert (tmp_path / "serving" / "1" / "saved_model.pb").exists()  # version 1, as TF Serving expects
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "1"))
    signature = loaded.signatures["serving_default"]
    spec = signature.structured_input_signature[1]
    tensors = {name: tf.constant(columns[name], dtype=s.dtype) for name, s in spec.items()}
    (output,) = signature(**tensors).values()
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-5)

    unknown = distributed.http.get(f"{distributed.url}/api/v1/models/{model_id}/download", params={"format": "onnx"},
                                   timeout=10)
    assert unknown.status_code == 422 and "format" in unknown.json()["message"]
