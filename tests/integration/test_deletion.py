"""Deleting through REST on the production shape: what is in use is refused with what to do first,
and once deleted, no record answers and no file of the dataset, job or model is left."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_wine

from tests.integration.conftest import Service, submit, upload_frame, wait_until

pytestmark = pytest.mark.integration


def _files_naming(service: Service, *ids: str) -> list[str]:
    root = Path((service.env or {})["AUTOML_DATA_DIR"])
    return [str(p) for p in root.rglob("*") if any(i in str(p.relative_to(root)) for i in ids)]


def test_a_model_job_and_dataset_are_deleted_whole_once_nothing_uses_them(distributed: Service,
                                                                       tmp_path: Path) -> None:
    url, http = f"{distributed.url}/api/v1", distributed.http
    dataset = upload_frame(distributed, load_wine(as_frame=True).frame, tmp_path, "wine-to-delete")["id"]
    job = submit(distributed, dataset_id=dataset, target="target", tuner="random", max_trials=1, max_epochs=3,
                 seed=3)
    job = distributed.wait_for_job(job["id"])
    assert job["state"] == "succeeded", job
    model = job["model_id"]
    assert _files_naming(distributed, dataset) and _files_naming(distributed, job["id"]) and \
        _files_naming(distributed, model)

    # In use: refused, naming what to do first.
    assert http.put(f"{url}/aliases/to-delete", json={"model_id": model}, timeout=10).status_code in (200, 201)
    aliased = http.delete(f"{url}/models/{model}", timeout=10)
    assert aliased.status_code == 409 and "'to-delete'" in aliased.json()["message"]
    held = http.delete(f"{url}/jobs/{job['id']}", timeout=10)
    assert held.status_code == 409 and "'to-delete'" in held.json()["message"]
    used = http.delete(f"{url}/datasets/{dataset}", timeout=10)
    assert used.status_code == 409 and job["id"] in used.json()["message"]
    assert http.delete(f"{url}/aliases/to-delete", timeout=10).status_code == 204
    assert http.post(f"{url}/models/{model}/deploy", timeout=60).status_code == 200
    deployed = http.delete(f"{url}/models/{model}", timeout=10)
    assert deployed.status_code == 409 and "undeploy" in deployed.json()["message"]
    assert http.delete(f"{url}/models/{model}/deploy", timeout=10).status_code == 200

    # The model alone, then the job, then the dataset.
    assert http.delete(f"{url}/models/{model}", timeout=10).status_code == 204
    assert http.get(f"{url}/models/{model}", timeout=10).status_code == 404
    assert http.post(f"{url}/models/{model}/predict", json={"instances": [{}]}, timeout=10).status_code == 404
    assert http.get(f"{url}/jobs/{job['id']}", timeout=10).json()["model_id"] is None
    assert _files_naming(distributed, model) == []
    assert http.delete(f"{url}/jobs/{job['id']}", timeout=10).status_code == 204
    assert http.get(f"{url}/jobs/{job['id']}", timeout=10).status_code == 404
    assert http.get(f"{url}/jobs/{job['id']}/trials", timeout=10).status_code == 404
    assert http.delete(f"{url}/datasets/{dataset}", timeout=10).status_code == 204
    assert http.get(f"{url}/datasets/{dataset}", timeout=10).status_code == 404
    assert _files_naming(distributed, dataset, job["id"], model) == []
    assert http.delete(f"{url}/datasets/{dataset}", timeout=10).status_code == 404


def test_a_running_job_is_cancelled_then_deleted_by_its_worker(distributed: Service, tmp_path: Path) -> None:
    url, http = f"{distributed.url}/api/v1", distributed.http
    dataset = upload_frame(distributed, load_wine(as_frame=True).frame, tmp_path, "wine-running")["id"]
    job = submit(distributed, dataset_id=dataset, target="target", tuner="random", max_trials=20, max_epochs=200,
                 patience=200, seed=4, search_space={"batch_size": 16, "num_layers": 1})
    wait_until(lambda: http.get(f"{url}/jobs/{job['id']}", timeout=10).json()["running_trials"], 120,
               "a trial to run")
    running = http.delete(f"{url}/jobs/{job['id']}", timeout=10)
    assert running.status_code == 202 and running.json()["delete_requested"] is True, running.text
    # The worker stops its trials at the next epoch boundary, trains no final model, and deletes the job.
    wait_until(lambda: http.get(f"{url}/jobs/{job['id']}", timeout=10).status_code == 404, 300,
               "the job to be deleted once cancelled")
    models = [m for m in http.get(f"{url}/models", timeout=10).json() if m["job_id"] == job["id"]]
    assert models == []
    assert _files_naming(distributed, job["id"]) == []
