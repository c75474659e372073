"""Per-team quotas: deployed models, active jobs, parallel trials and stored bytes, each refused with
what to do, per team (another team is not affected), and ``GET /api/v1/usage`` showing them.

In process, over the real app factory, SQLite (store and broker) and a real (tiny) Keras model.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from automl.store.records import DatasetRecord, ModelRecord
from tests.seed import Owned, tiny_model
from tests.unit.test_access import seeded_app, team_client


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models"))


def _usage(client: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/usage")
    assert answer.status_code == 200, answer.get_json()
    return {entry["team"]: entry for entry in answer.get_json()["teams"]}


def _copy_model(app: Flask, owned: Owned, new_id: str) -> str:
    with app.extensions["automl"].store.session() as session:
        model = session.get(ModelRecord, owned.model)
        assert model is not None
        session.add(ModelRecord(id=new_id, team=model.team, job_id=model.job_id, dataset_id=model.dataset_id,
                                task=model.task, target=model.target, classes=model.classes, state="ready",
                                path=model.path, input_schema=model.input_schema))
    return new_id


def test_usage_shows_each_quota_and_an_admin_sees_every_team(tmp_path: Path, model_dir: Path) -> None:
    app = seeded_app(tmp_path, model_dir, quota_active_jobs=3)
    alpha, admin = team_client(app, "alpha"), team_client(app, "ops", admin=True)
    mine = _usage(alpha)
    assert list(mine) == ["alpha"]
    entry = mine["alpha"]
    assert entry["active_jobs"] == {"used": 0, "limit": 3}
    assert entry["deployed_models"]["used"] == 0 and entry["deployed_models"]["limit"] == 20
    owned: dict[str, Owned] = app.config["owned"]
    with app.extensions["automl"].store.session() as session:
        dataset = session.get(DatasetRecord, owned["alpha"].dataset)
        assert dataset is not None
        table_bytes = Path(dataset.path).stat().st_size
    stored = entry["stored_bytes"]
    assert stored["datasets"] == table_bytes and stored["models"] > 0
    assert stored["used"] == stored["datasets"] + stored["jobs"] + stored["models"]
    assert alpha.get("/api/v1/usage?team=beta").get_json()["teams"][0]["team"] == "alpha"  # own team only
    everyone = _usage(admin)
    assert {"alpha", "beta", "ops"} <= set(everyone)
    assert list(_usage_of(admin, "beta")) == ["beta"]


def _usage_of(client: Any, team: str) -> dict[str, Any]:
    return {entry["team"]: entry for entry in client.get(f"/api/v1/usage?team={team}").get_json()["teams"]}


def test_deployed_models_quota_is_per_team(tmp_path: Path, model_dir: Path) -> None:
    app = seeded_app(tmp_path, model_dir, quota_deployed_models=1)
    owned: dict[str, Owned] = app.config["owned"]
    alpha, beta = team_client(app, "alpha"), team_client(app, "beta")
    second = _copy_model(app, owned["alpha"], "alpha-second-model")
    assert alpha.post(f"/api/v1/models/{owned['alpha'].model}/deploy").status_code == 200
    assert alpha.post(f"/api/v1/models/{owned['alpha'].model}/deploy").status_code == 200  # again: no new place
    refused = alpha.post(f"/api/v1/models/{second}/deploy")
    assert refused.status_code == 409 and refused.get_json()["error"] == "quota_exceeded"
    assert "AUTOML_QUOTA_DEPLOYED_MODELS=1" in refused.get_json()["message"]
    assert "Undeploy" in refused.get_json()["message"]
    assert alpha.get(f"/api/v1/models/{second}").get_json()["deployed"] is False
    assert beta.post(f"/api/v1/models/{owned['beta'].model}/deploy").status_code == 200  # another team's place
    assert _usage(alpha)["alpha"]["deployed_models"] == {"used": 1, "limit": 1}
    assert alpha.delete(f"/api/v1/models/{owned['alpha'].model}/deploy").status_code == 200
    assert alpha.post(f"/api/v1/models/{second}/deploy").status_code == 200


def test_active_jobs_and_parallel_trials_quotas(tmp_path: Path, model_dir: Path) -> None:
    app = seeded_app(tmp_path, model_dir, quota_active_jobs=1, quota_parallel_trials=2)
    owned: dict[str, Owned] = app.config["owned"]
    alpha, beta = team_client(app, "alpha"), team_client(app, "beta")
    job = {"dataset_id": owned["alpha"].dataset, "target": "label", "max_trials": 3}
    wide = alpha.post("/api/v1/jobs", json={**job, "parallel_trials": 3})
    assert wide.status_code == 409 and "AUTOML_QUOTA_PARALLEL_TRIALS" in wide.get_json()["message"]
    first = alpha.post("/api/v1/jobs", json={**job, "parallel_trials": 2})
    assert first.status_code == 202, first.get_json()
    second = alpha.post("/api/v1/jobs", json=job)
    assert second.status_code == 409 and second.get_json()["error"] == "quota_exceeded"
    assert "1 queued or running jobs" in second.get_json()["message"]
    assert "AUTOML_QUOTA_ACTIVE_JOBS" in second.get_json()["message"]
    theirs = beta.post("/api/v1/jobs", json={**job, "dataset_id": owned["beta"].dataset})
    assert theirs.status_code == 202  # the other team's quota is its own
    assert _usage(alpha)["alpha"]["parallel_trials"] == {"used": 2, "limit": 2}
    assert alpha.post(f"/api/v1/jobs/{first.get_json()['id']}/cancel").status_code == 202
    assert alpha.post("/api/v1/jobs", json=job).status_code == 202  # a cancelled job frees its place


def test_stored_bytes_quota_refuses_an_upload_before_reading_it(tmp_path: Path, model_dir: Path) -> None:
    probe = seeded_app(tmp_path / "probe", model_dir)
    used = _usage(team_client(probe, "alpha"))["alpha"]["stored_bytes"]["used"]
    app = seeded_app(tmp_path / "app", model_dir, quota_stored_bytes=used + 2000)
    alpha, beta = team_client(app, "alpha"), team_client(app, "beta")
    small = b"x,y\n" + b"".join(f"{i},{i % 2}\n".encode() for i in range(50))
    big = b"x,y\n" + b"".join(f"{i},{i % 2}\n".encode() for i in range(2000))

    def upload(client: Any, body: bytes) -> Any:
        return client.post("/api/v1/datasets", data={"file": (io.BytesIO(body), "t.csv")},
                           content_type="multipart/form-data")

    refused = upload(alpha, big)
    assert refused.status_code == 413, refused.get_json()
    message = refused.get_json()["message"]
    assert "AUTOML_QUOTA_STORED_BYTES" in message and "Team 'alpha' stores" in message and "/api/v1/usage" in message
    assert len(alpha.get("/api/v1/datasets").get_json()) == 1  # nothing was added
    assert not list((tmp_path / "app" / "var" / "tmp").glob("upload-*"))
    assert upload(alpha, small).status_code == 201  # under the quota
    assert upload(beta, small).status_code == 201  # its own bytes: the same quota, counted per team
    # A team at its quota starts no new job either (a job writes tuner state and models).
    full = seeded_app(tmp_path / "full", model_dir, quota_stored_bytes=1)
    owned: dict[str, Owned] = full.config["owned"]
    job = team_client(full, "alpha").post("/api/v1/jobs", json={"dataset_id": owned["alpha"].dataset,
                                                                "target": "label", "max_trials": 1})
    assert job.status_code == 413 and "AUTOML_QUOTA_STORED_BYTES" in job.get_json()["message"]
