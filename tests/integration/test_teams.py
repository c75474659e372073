"""Teams on the production shape (the API server, PostgreSQL, Redis, a Celery worker): a model trained by
one team is invisible to another on every route family, and the embedded mode's admin key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Service, as_key, create_key

pytestmark = pytest.mark.integration


def test_another_team_cannot_see_or_use_a_trained_model(distributed: Service, penguins_model: str) -> None:
    assert distributed.env is not None
    owner = distributed.http
    model: dict[str, Any] = owner.get(f"{distributed.url}/api/v1/models/{penguins_model}", timeout=10).json()
    row = {"island": "Biscoe", "bill_length_mm": 45.0, "bill_depth_mm": 15.0, "flipper_length_mm": 210.0,
           "body_mass_g": 5000.0, "sex": "male", "year": 2008}
    assert owner.post(f"{distributed.url}/api/v1/models/{penguins_model}/predict", json={"instances": [row]},
                      timeout=30).status_code == 200  # loaded in a serving process now
    assert owner.put(f"{distributed.url}/api/v1/aliases/team-test", json={"model_id": penguins_model},
                     timeout=10).status_code in (200, 201)

    other = as_key(create_key(distributed.env, "marketing"))
    base = f"{distributed.url}/api/v1"
    for method, url, body in [
        ("GET", f"{base}/datasets/{model['dataset_id']}", None),
        ("GET", f"{base}/jobs/{model['job_id']}", None),
        ("GET", f"{base}/jobs/{model['job_id']}/trials", None),
        ("POST", f"{base}/jobs/{model['job_id']}/cancel", None),
        ("POST", f"{base}/jobs", {"dataset_id": model["dataset_id"], "target": "species"}),
        ("GET", f"{base}/models/{penguins_model}", None),
        ("GET", f"{base}/models/{penguins_model}/history", None),
        ("GET", f"{base}/models/{penguins_model}/download", None),
        ("POST", f"{base}/models/{penguins_model}/predict", {"instances": [row]}),
        ("POST", f"{base}/models/{penguins_model}/predict_proba", {"instances": [row]}),
        ("POST", f"{base}/models/team-test/predict", {"instances": [row]}),
        ("GET", f"{base}/aliases/team-test", None),
        ("GET", f"{distributed.url}/v1/models/{penguins_model}", None),
        ("POST", f"{distributed.url}/v1/models/{penguins_model}:predict", {"instances": [row]}),
    ]:
        for _ in range(2):  # both serving processes, the one with the model loaded among them
            answer = other.request(method, url, json=body, timeout=30)
            assert answer.status_code == 404, (method, url, answer.status_code, answer.text[:300])
    for family in ("datasets", "jobs", "models", "aliases"):
        assert other.get(f"{base}/{family}", timeout=10).json() == [], family
    assert other.get(f"{base}/search-space", timeout=10).status_code == 200  # not data: any key may read it
    assert distributed.http.delete(f"{base}/aliases/team-test", timeout=10).status_code == 204


def test_embedded_mode_printed_its_admin_key_once(embedded: Service) -> None:
    log = (embedded.log_dir / "serve.log").read_text()
    assert log.count(embedded.key) == 1 and "admin-key" in log
    assert embedded.http.get(f"{embedded.url}/api/v1/datasets", timeout=10).status_code == 200
