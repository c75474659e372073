"""Cancel a running job (its best model so far serving meanwhile), follow it as Server-Sent Events, and
replay a POST by Idempotency-Key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sklearn.datasets import load_wine

from tests.integration.conftest import Service, upload_frame, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wine(distributed: Service, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(upload_frame(distributed, load_wine(as_frame=True).frame, tmp_path_factory.mktemp("wine"), "wine")["id"])


def _sse(text: str) -> list[tuple[int, str, dict[str, Any]]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


def test_cancel_keeps_finished_trials_and_the_best_model(distributed: Service, wine: str) -> None:
    url = distributed.url
    body = {"dataset_id": wine, "target": "target", "tuner": "random", "max_trials": 20, "max_epochs": 200,
            "patience": 200, "seed": 11, "search_space": {"batch_size": 16, "num_layers": 1}}
    job = distributed.http.post(f"{url}/api/v1/jobs", json=body, timeout=30).json()
    job_id = job["id"]

    def second_trial_running() -> dict[str, Any] | None:
        current: dict[str, Any] = distributed.http.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()
        running = current["running_trials"]
        return current if current["trials_done"] >= 1 and running and running[0]["epoch"] >= 2 else None

    # Cancel once trial 0 has finished (all 200 epochs: a few seconds on wine) and trial 1 is training.
    progress = wait_until(second_trial_running, 400, "the second trial to be training")
    assert progress["state"] == "running" and progress["elapsed_s"] > 0 and progress["eta_s"] is not None
    assert progress["best_trial_id"] == "00"
    # The best model so far serves while the search goes on: trial 0's own weights.
    interim = distributed.http.get(f"{url}/api/v1/models/{progress['best_model_id']}", timeout=10).json()
    assert interim["interim"] is True and interim["trial_id"] == "00" and interim["state"] == "ready"
    assert interim["test_metrics"]["accuracy"] > 0.5 and not interim["refit"]
    row = {k: v for k, v in load_wine(as_frame=True).frame.iloc[0].items() if k != "target"}
    early = distributed.http.post(f"{url}/api/v1/models/{interim['id']}/predict", json={"instances": [row]},
                                  timeout=30)
    assert early.status_code == 200 and early.json()["predictions"][0] in (0, 1, 2), early.text
    assert distributed.http.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()["state"] == "running"

    cancelled = distributed.http.post(f"{url}/api/v1/jobs/{job_id}/cancel", timeout=10)
    assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True
    finished = distributed.wait_for_job(job_id, timeout=120)
    assert finished["state"] == "cancelled", finished
    assert finished["stop_reason"] == "cancelled" and finished["model_id"]
    trials = distributed.http.get(f"{url}/api/v1/jobs/{job_id}/trials", timeout=10).json()["trials"]
    assert 2 <= len(trials) < 20 and all(t["state"] == "completed" for t in trials)
    interrupted = next(t for t in trials if t["number"] == max(x["number"] for x in trials))
    assert interrupted["epochs_done"] < 200  # stopped at an epoch boundary, not run out
    history = distributed.http.get(f"{url}/api/v1/jobs/{job_id}/trials/{interrupted['trial_id']}/history", timeout=10)
    assert len(history.json()["epochs"]) == interrupted["epochs_done"]

    model = distributed.http.get(f"{url}/api/v1/models/{finished['model_id']}", timeout=10).json()
    assert model["state"] == "ready" and model["interim"] is False
    # The final model is now the best model; the interim one is gone.
    assert finished["best_model_id"] == finished["model_id"]
    assert distributed.http.get(f"{url}/api/v1/models/{interim['id']}", timeout=10).status_code == 404
    predicted = distributed.http.post(f"{url}/api/v1/models/{finished['model_id']}/predict", json={"instances": [row]},
                                      timeout=30)
    assert predicted.status_code == 200, predicted.text
    again = distributed.http.post(f"{url}/api/v1/jobs/{job_id}/cancel", timeout=10)
    assert again.status_code == 202 and again.json()["state"] == "cancelled"

    # The whole story as Server-Sent Events; the stream ends after job_ended.
    with distributed.http.get(f"{url}/api/v1/jobs/{job_id}/events", stream=True, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = _sse(response.text)
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "trial_started" and kinds[-1] == "job_ended"
    assert "cancel_requested" in kinds and kinds.count("trial_ended") == len(trials)
    published = [data for _, kind, data in events if kind == "best_model"]
    assert published and published[0]["model_id"] == interim["id"] and published[0]["trial_id"] == "00"
    assert published[0]["score"] == pytest.approx(progress["best_score"])
    assert kinds.count("epoch_ended") == sum(t["epochs_done"] for t in trials)
    epoch = next(data for _, kind, data in events if kind == "epoch_ended")
    assert {"trial_id", "epoch", "metrics"} <= set(epoch) and "val_loss" in epoch["metrics"]
    assert events[-1][2]["state"] == "cancelled" and events[-1][2]["model_id"] == finished["model_id"]
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(ids)
    # Resuming after an event replays only what came after it.
    resumed = distributed.http.get(f"{url}/api/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(ids[-3])},
                                   timeout=60)
    assert [event_id for event_id, _, _ in _sse(resumed.text)] == ids[-2:]
    bad = distributed.http.get(f"{url}/api/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"}, timeout=10)
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["message"]


def test_events_stream_live_while_the_job_runs(distributed: Service, wine: str) -> None:
    """Events arrive as they happen: the first epoch_ended is read while the job is still running (a
    server holding events back until job_ended would fail here), and every epoch is there."""
    url = distributed.url
    job_id = distributed.http.post(f"{url}/api/v1/jobs", timeout=30, json={
        "dataset_id": wine, "target": "target", "tuner": "random", "max_trials": 2, "max_epochs": 4, "seed": 12,
        "patience": 4}).json()["id"]
    seen: list[str] = []
    state_at_first_epoch = None
    with distributed.http.get(f"{url}/api/v1/jobs/{job_id}/events", stream=True, timeout=300) as response:
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("event: "):
                seen.append(line.removeprefix("event: "))
                if seen[-1] == "epoch_ended" and state_at_first_epoch is None:
                    state_at_first_epoch = distributed.http.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()[
                        "state"]
    assert state_at_first_epoch == "running"
    trials = distributed.http.get(f"{url}/api/v1/jobs/{job_id}/trials", timeout=10).json()["trials"]
    assert seen[0] == "trial_started" and seen[-1] == "job_ended"
    assert seen.count("trial_started") == seen.count("trial_ended") == len(trials) == 2
    assert seen.count("epoch_ended") == sum(t["epochs_done"] for t in trials) > 0


def test_same_idempotency_key_returns_the_same_job(distributed: Service, wine: str) -> None:
    url = distributed.url
    body = {"dataset_id": wine, "target": "target", "tuner": "random", "max_trials": 1, "max_epochs": 2, "seed": 13}
    key = {"Idempotency-Key": "retry-after-timeout-7"}
    first = distributed.http.post(f"{url}/api/v1/jobs", json=body, headers=key, timeout=30)
    second = distributed.http.post(f"{url}/api/v1/jobs", json=body, headers=key, timeout=30)
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    listed = distributed.http.get(f"{url}/api/v1/jobs", params={"limit": 100}, timeout=10).json()
    assert [j["id"] for j in listed].count(first.json()["id"]) == 1

    changed = distributed.http.post(f"{url}/api/v1/jobs", json={**body, "max_trials": 2}, headers=key, timeout=30)
    assert changed.status_code == 422 and "different job request" in changed.json()["message"]
    too_long = distributed.http.post(f"{url}/api/v1/jobs", json=body, headers={"Idempotency-Key": "k" * 300},
                                             timeout=30)
    assert too_long.status_code == 422 and "Idempotency-Key" in too_long.json()["message"]
    assert distributed.wait_for_job(first.json()["id"], timeout=300)["state"] == "succeeded"
