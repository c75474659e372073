"""The exact commands the Kubernetes manifests run (the migration init container, the API server with its
config, the Celery worker with its flags), started here with the manifests' ConfigMap against
the real PostgreSQL and Redis: they migrate, become ready, run a job and serve predictions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sklearn.datasets import load_iris

from tests.integration.conftest import (
    Service,
    _stop,
    create_key,
    free_port,
    pg_schema,
    submit,
    upload_frame,
    wait_until,
)
from tests.unit.test_deploy_manifests import find, render

pytestmark = pytest.mark.integration
REDIS_DB = "redis://127.0.0.1:6379/13"


@pytest.fixture
def schema_url() -> Iterator[str]:
    with pg_schema("k8s") as url:
        yield url


def _container(objects: list[dict[str, Any]], deployment: str, init: bool = False) -> dict[str, Any]:
    spec = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    container: dict[str, Any] = spec["initContainers" if init else "containers"][0]
    return container


def test_manifest_commands_serve_and_train(schema_url: str, tmp_path: Path) -> None:
    objects = render("cpu")
    config = dict(find(objects, "ConfigMap", "automl-config")["data"])
    port = free_port()
    redis.Redis.from_url(REDIS_DB).flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOML_")}
    env.update(config)
    env.update({  # where this machine differs from the cluster: its database, broker, disk and port
        "AUTOML_DATABASE_URL": schema_url, "AUTOML_BROKER_URL": REDIS_DB, "AUTOML_DATA_DIR": str(tmp_path / "data"),
        "AUTOML_BIND": f"127.0.0.1:{port}", "AUTOML_API_WORKERS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })
    migrate = _container(objects, "automl-api", init=True)["command"]
    done = subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    processes = []
    for name, command in (("worker", _container(objects, "automl-worker")["command"]),
                          ("api", _container(objects, "automl-api")["command"])):
        log = (tmp_path / f"{name}.log").open("wb")
        processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    url = f"http://127.0.0.1:{port}"
    # The operator's step after the first deployment: a key made with the image's own command.
    service = Service(url=url, log_dir=tmp_path, key=create_key(env, "ops", admin=True))
    try:
        def ready() -> bool:
            assert all(p.poll() is None for p in processes), service.logs()
            try:
                return service.http.get(f"{url}/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, 120, "the API started by the manifest's command to be ready")
        iris = load_iris(as_frame=True).frame
        dataset = upload_frame(service, iris, tmp_path, "iris")
        job = submit(service, dataset_id=dataset["id"], target="target", tuner="random", max_trials=1,
                     max_epochs=3, seed=0, search_space={"num_layers": 1})
        finished = service.wait_for_job(job["id"])
        assert finished["state"] == "succeeded", finished
        answer = service.http.post(f"{url}/api/v1/models/{finished['model_id']}/predict",
                                   json={"instances": [iris.drop(columns="target").iloc[0].to_dict()]}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
        assert '"job_id"' in (tmp_path / "worker.log").read_text()  # the manifests ask for JSON logs
    finally:
        _stop(processes)
