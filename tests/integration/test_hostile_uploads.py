"""The hostile-input corpus (tests/hostile.py) against the running service (the API server, its own limits from
the environment): every bomb, slip and malformed file is refused with its status and a message that
says why, before it can exhaust anything, and nothing of it is kept. The same corpus runs in process in
tests/unit/test_hostile_input.py; here it goes through the real server and its request parsing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile import LIMITS, uploads
from tests.integration.conftest import Service, _base_env, create_key, serving

pytestmark = pytest.mark.integration

MAX_JSON = 65_536


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("hostile")
    env = _base_env(root / "var")
    env.update({f"AUTOML_{name.upper()}": str(value) for name, value in LIMITS.items()})
    env.update({"AUTOML_MAX_JSON_BYTES": str(MAX_JSON), "AUTOML_RATE_LIMIT_UPLOAD": ""})
    key = create_key(env, "hostile")
    with serving(root, env, "--workers", "1") as url:
        yield Service(url=url, log_dir=root, env=env, key=key)


def _kept(service: Service) -> list[Path]:
    assert service.env is not None
    var = Path(service.env["AUTOML_DATA_DIR"])
    return [p for p in (var / "datasets").rglob("*") if p.is_file()] + list((var / "tmp").glob("*"))


@pytest.mark.parametrize("item", uploads(), ids=lambda item: item.name)
def test_every_hostile_upload_is_refused_with_its_reason(guarded: Service, item: object) -> None:
    answer = guarded.http.post(f"{guarded.url}/api/v1/datasets",
                               files={"file": (item.filename, item.content)}, timeout=120)  # type: ignore[attr-defined]
    assert answer.status_code == item.status, (item.name, answer.status_code, answer.text[:300])  # type: ignore
    assert item.needle in answer.json()["message"], (item.name, answer.json()["message"])  # type: ignore
    assert _kept(guarded) == [], item.name  # type: ignore[attr-defined]


def test_a_json_body_past_its_limit_is_413(guarded: Service) -> None:
    body = '{"dataset_id": "x", "target": "' + "y" * (MAX_JSON + 10) + '"}'
    answer = guarded.http.post(f"{guarded.url}/api/v1/jobs", data=body, timeout=30,
                               headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "AUTOML_MAX_JSON_BYTES" in answer.json()["message"], answer.text[:300]
    # Sent chunked (no Content-Length), the same body is cut off at the limit while it is read, and a small
    # one is read whole: the answer is about the dataset it names.
    def chunked(text: str) -> Iterator[bytes]:
        return (text[i:i + 8192].encode() for i in range(0, len(text), 8192))

    answer = guarded.http.post(f"{guarded.url}/api/v1/jobs", data=chunked(body), timeout=30,
                               headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "AUTOML_MAX_JSON_BYTES" in answer.json()["message"], answer.text[:300]
    answer = guarded.http.post(f"{guarded.url}/api/v1/jobs", data=chunked('{"dataset_id": "abc123", "target": "y"}'),
                               timeout=30, headers={"Content-Type": "application/json"})
    assert answer.status_code == 404 and "abc123" in answer.json()["message"], answer.text[:300]
