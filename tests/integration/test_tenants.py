"""A hostile or careless tenant against the real service (the API server, SQLite store and broker, no
worker: jobs stay queued): roles refused with 403 naming the role, quotas refused before the body is
read, and probes that answer on their own port while every request thread is held by event streams."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests

from tests.integration.conftest import (
    Service,
    _base_env,
    as_key,
    create_key,
    free_port,
    serving,
    upload_frame,
    wait_until,
)

pytestmark = pytest.mark.integration

THREADS = 3
STREAMS_PER_KEY = 2


@pytest.fixture(scope="module")
def tenant_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, int]]:
    root = tmp_path_factory.mktemp("tenants")
    env = _base_env(root / "var")
    probe_port = free_port()
    env.update({"AUTOML_PROBE_PORT": str(probe_port), "AUTOML_API_THREADS": str(THREADS),
                "AUTOML_QUOTA_ACTIVE_JOBS": "1", "AUTOML_QUOTA_STORED_BYTES": "400000",
                "AUTOML_QUOTA_PARALLEL_TRIALS": "2",
                "AUTOML_EVENTS_STREAM_MAX_S": "120", "AUTOML_KEY_CACHE_S": "0",
                "AUTOML_KEY_MAX_STREAMS": str(STREAMS_PER_KEY)})
    key = create_key(env, "big", admin=False)
    with serving(root, env, "--workers", "1") as url:
        yield Service(url=url, log_dir=root, env=env, key=key), probe_port


def test_roles_are_enforced_by_the_running_service(tenant_service: tuple[Service, int]) -> None:
    service, _ = tenant_service
    assert service.env is not None
    scorer = as_key(create_key(service.env, "big", role="predict"))
    reader = as_key(create_key(service.env, "big", role="read"))
    refused = scorer.get(f"{service.url}/api/v1/datasets", timeout=30)
    assert refused.status_code == 403 and "role 'read'" in refused.json()["message"]
    assert reader.get(f"{service.url}/api/v1/datasets", timeout=30).status_code == 200
    upload = reader.post(f"{service.url}/api/v1/datasets", files={"file": ("t.csv", b"a,b\n1,2\n")}, timeout=30)
    assert upload.status_code == 403 and "role 'write'" in upload.json()["message"]
    keys = service.http.get(f"{service.url}/api/v1/keys", timeout=30)
    assert keys.status_code == 403 and "role 'admin'" in keys.json()["message"]


def test_quotas_refuse_with_the_usage_and_leave_nothing(tenant_service: tuple[Service, int], tmp_path: Path) -> None:
    service, _ = tenant_service
    small = pd.DataFrame({"x": range(300), "y": [i % 2 for i in range(300)]})
    dataset = upload_frame(service, small, tmp_path, "small")
    big = ("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(60_000))).encode()  # ~600 kB: past the quota
    refused = service.http.post(f"{service.url}/api/v1/datasets", files={"file": ("big.csv", big)}, timeout=60)
    assert refused.status_code == 413, refused.text
    assert "AUTOML_QUOTA_STORED_BYTES" in refused.json()["message"] and "Team 'big' stores" in refused.json()["message"]
    assert [d["id"] for d in service.http.get(f"{service.url}/api/v1/datasets", timeout=30).json()] == [dataset["id"]]
    job = {"dataset_id": dataset["id"], "target": "y", "max_trials": 3}
    wide = service.http.post(f"{service.url}/api/v1/jobs", json={**job, "parallel_trials": 3}, timeout=30)
    assert wide.status_code == 409 and "AUTOML_QUOTA_PARALLEL_TRIALS" in wide.json()["message"], wide.text
    assert service.http.post(f"{service.url}/api/v1/jobs", json=job, timeout=30).status_code == 202
    second = service.http.post(f"{service.url}/api/v1/jobs", json=job, timeout=30)
    assert second.status_code == 409 and second.json()["error"] == "quota_exceeded"
    usage = service.http.get(f"{service.url}/api/v1/usage", timeout=30).json()["teams"]
    assert usage[0]["team"] == "big" and usage[0]["active_jobs"] == {"used": 1, "limit": 1}
    assert 0 < usage[0]["stored_bytes"]["used"] <= 400000


def _queued_job(service: Service, tmp_path: Path) -> dict[str, object]:
    """A job that stays queued (no worker runs it), so its event stream stays open: the one the quota test
    left, or a new one when this test runs alone."""
    jobs = service.http.get(f"{service.url}/api/v1/jobs", timeout=30).json()
    queued = next((j for j in jobs if j["state"] == "queued"), None)
    if queued is not None:
        return dict(queued)
    frame = pd.DataFrame({"x": range(100), "y": [i % 2 for i in range(100)]})
    dataset = upload_frame(service, frame, tmp_path, "streamed")
    created = service.http.post(f"{service.url}/api/v1/jobs", json={"dataset_id": dataset["id"], "target": "y"},
                                timeout=30)
    assert created.status_code == 202, created.text
    return dict(created.json())


def test_probes_answer_while_every_request_thread_is_held(tenant_service: tuple[Service, int],
                                                          tmp_path: Path) -> None:
    """A key holds at most STREAMS_PER_KEY event streams; with another key's stream every request thread is
    taken, and the probe listener still answers."""
    service, probe_port = tenant_service
    assert service.env is not None
    queued = _queued_job(service, tmp_path)
    path = f"{service.url}/api/v1/jobs/{queued['id']}/events"
    other = as_key(create_key(service.env, "big"))
    streams: list[requests.Response] = []
    opened = threading.Barrier(THREADS + 1)

    def hold(session: requests.Session) -> None:
        response = session.get(path, stream=True, timeout=60)
        streams.append(response)
        next(response.iter_content(16))  # the stream has started: its thread is taken
        opened.wait(timeout=60)

    holders = [threading.Thread(target=hold, args=(service.http,)) for _ in range(STREAMS_PER_KEY)]
    for thread in holders:
        thread.start()
    wait_until(lambda: len(streams) == STREAMS_PER_KEY, 60, "the key's streams to open")
    refused = service.http.get(path, timeout=30)  # the third thread answers: the key holds its limit
    assert refused.status_code == 429 and "AUTOML_KEY_MAX_STREAMS" in refused.json()["message"]
    holders.append(threading.Thread(target=hold, args=(other,)))  # another key: the last free thread
    holders[-1].start()
    opened.wait(timeout=60)
    try:
        with pytest.raises(requests.exceptions.Timeout):  # the API's own port: every thread is busy
            requests.get(f"{service.url}/healthz", timeout=3)
        probes = f"http://127.0.0.1:{probe_port}"
        assert requests.get(f"{probes}/healthz", timeout=3).json() == {"status": "ok"}
        ready = requests.get(f"{probes}/readyz", timeout=10)
        assert ready.status_code in (200, 503) and ready.json()["database"] is True
        assert requests.get(f"{probes}/metrics", timeout=3).status_code == 404  # probes only
    finally:
        for response in streams:
            response.close()
        for thread in holders:
            thread.join(timeout=10)
    assert requests.get(f"{service.url}/healthz", timeout=30).status_code == 200  # threads given back


def test_an_expired_key_is_refused(tenant_service: tuple[Service, int]) -> None:
    import sqlite3

    service, _ = tenant_service
    assert service.env is not None
    key = create_key(service.env, "big", role="read")
    assert as_key(key).get(f"{service.url}/api/v1/datasets", timeout=30).status_code == 200
    with sqlite3.connect(Path(service.env["AUTOML_DATA_DIR"]) / "automl.db") as db:  # as if 90 days had passed
        db.execute("UPDATE api_keys SET expires_at = '2020-01-01 00:00:00.000000' WHERE id = ?", (key[4:12],))
    answer = as_key(key).get(f"{service.url}/api/v1/datasets", timeout=30)
    assert answer.status_code == 401 and "expired" in answer.json()["message"]


def test_a_small_teams_job_finishes_while_a_large_teams_backlog_waits(tmp_path: Path) -> None:
    """One worker, two teams: a backlog of five jobs from one team does not make the other team's single
    job wait behind all of them; teams take turns for the worker."""
    from sklearn.datasets import load_iris

    env = _base_env(tmp_path / "var")
    env.update({"AUTOML_QUOTA_DEPLOYED_MODELS": "1", "AUTOML_DEPLOYED_REFRESH_S": "1",
                "AUTOML_DEPLOYED_MEMORY_MB": "0.001"})  # a kilobyte: no deployed model fits
    with serving(tmp_path, env, "--with-worker", log="serve.log") as url:
        big = Service(url=url, log_dir=tmp_path, env=env, key=create_key(env, "big"))
        small = Service(url=url, log_dir=tmp_path, env=env, key=create_key(env, "small"))
        frame = load_iris(as_frame=True).frame
        job = {"target": "target", "tuner": "random", "max_trials": 2, "max_epochs": 2, "ensemble_size": 0,
               "refit": False, "search_space": {"num_layers": 1, "units": 16}}
        big_data = upload_frame(big, frame, tmp_path, "big")["id"]
        small_data = upload_frame(small, frame, tmp_path, "small")["id"]
        backlog = [big.http.post(f"{url}/api/v1/jobs", json={"dataset_id": big_data, **job, "seed": i},
                                 timeout=30).json()["id"] for i in range(5)]
        mine = small.http.post(f"{url}/api/v1/jobs", json={"dataset_id": small_data, **job}, timeout=30).json()["id"]
        finished = small.wait_for_job(mine, timeout=600)
        assert finished["state"] == "succeeded", small.logs()
        states = [big.http.get(f"{url}/api/v1/jobs/{j}", timeout=30).json() for j in backlog]
        done_first = [s["id"] for s in states if s["finished_at"] and s["finished_at"] <= finished["finished_at"]]
        # Without turns the small job's two trials come after all five of the backlog's first and second
        # trials (round robin over lanes): every big job would have finished first.
        assert len(done_first) <= 1, (done_first, [s["state"] for s in states])
        assert "another team's turn" in (tmp_path / "serve.log").read_text()
        models = []
        for job_id in backlog:  # the backlog is served too
            ended = big.wait_for_job(job_id, timeout=600)
            assert ended["state"] == "succeeded"
            models.append(ended["model_id"])
        # Deployed models per team (quota 1 here): the second is refused, the other team's is its own.
        assert big.http.post(f"{url}/api/v1/models/{models[0]}/deploy", timeout=60).status_code == 200
        refused = big.http.post(f"{url}/api/v1/models/{models[1]}/deploy", timeout=60)
        assert refused.status_code == 409 and "AUTOML_QUOTA_DEPLOYED_MODELS=1" in refused.json()["message"]
        assert small.http.post(f"{url}/api/v1/models/{finished['model_id']}/deploy", timeout=60).status_code == 200
        # Past the memory budget for pinned models: not pinned in any serving process, still served.
        wait_until(lambda: all(requests.get(f"{url}/readyz", timeout=10).json()["over_budget"] == 2
                               for _ in range(4)), 60, "both serving processes to count two over budget")
        row = frame.drop(columns=["target"]).iloc[:3].to_dict("records")
        for service, model in ((big, models[0]), (small, finished["model_id"])):
            answer = service.http.post(f"{url}/api/v1/models/{model}/predict", json={"instances": row}, timeout=60)
            assert answer.status_code == 200 and len(answer.json()["predictions"]) == 3


def test_the_client_manages_keys_usage_and_deletion(tenant_service: tuple[Service, int], tmp_path: Path) -> None:
    from automl.client import Client, Forbidden, QuotaExceeded, Unauthorized

    service, _ = tenant_service
    assert service.env is not None
    admin = Client(service.url, create_key(service.env, "ops", admin=True))
    created = admin.create_key("newteam", role="predict", name="scorer", expires_in="30d")
    assert created["role"] == "predict" and created["expires_at"] and created["key"].startswith("amk_")
    assert [k["id"] for k in admin.keys(team="newteam")] == [created["id"]]
    scorer = Client(service.url, created["key"])
    with pytest.raises(Forbidden, match="role 'read'"):
        scorer.datasets()
    admin.revoke_key(created["id"])
    with pytest.raises(Unauthorized, match="revoked"):
        scorer.model("anything")  # AUTOML_KEY_CACHE_S=0 here: revoked at once
    team = Client(service.url, service.key)
    assert team.usage()[0]["team"] == "big"
    assert {"big", "ops", "newteam"} <= {entry["team"] for entry in admin.usage()}
    queued = next(j for j in team.jobs() if j["state"] == "queued")
    with pytest.raises(QuotaExceeded, match="AUTOML_QUOTA_ACTIVE_JOBS"):
        team.submit(queued["dataset_id"], "y", max_trials=1)
    team.delete("job", queued["id"])  # queued: cancelled and deleted at once
    assert all(j["id"] != queued["id"] for j in team.jobs())
