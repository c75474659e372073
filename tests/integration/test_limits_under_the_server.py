"""Limits that the HTTP server enforces, tested under the API server as deployed (``api.server``, granian;
Flask's development server resets the connection instead of answering): the body size limit, the form-part
limit, bodies sent chunked, and per-key rate limits counted in Redis, shared by every serving process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import requests
import urllib3

from tests.integration.conftest import (
    Service,
    _base_env,
    _spawn,
    _stop,
    _wait_healthy,
    as_key,
    create_key,
    free_port,
    pg_schema,
)

pytestmark = pytest.mark.integration

RATE_REDIS = "redis://127.0.0.1:6379/13"
MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("limited")
    redis.Redis.from_url(RATE_REDIS).flushdb()
    with pg_schema("lim") as database_url:
        env = _base_env(root / "var")
        env.update({"AUTOML_DATABASE_URL": database_url, "AUTOML_BROKER_URL": RATE_REDIS,
                    "AUTOML_MAX_UPLOAD_BYTES": str(MAX_UPLOAD), "AUTOML_RATE_LIMIT_UPLOAD": "4/minute"})
        port = free_port()
        api = _spawn(["serve", "--port", str(port), "--workers", "2"], env, root / "api.log")
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", [api], root)
            yield Service(url=f"http://127.0.0.1:{port}", log_dir=root, env=env, key=create_key(env, "ops"))
        finally:
            _stop([api])


def test_a_body_over_the_limit_is_413(limited: Service) -> None:
    # Answered before the body is read; the client must still get the answer, not a reset
    # connection (without draining the body, about 4 in 10 such uploads saw a reset). Past the
    # key's 4 uploads a minute the answer is a 429, refused before reading the body too.
    big = b"a,b\n" + b"1,2\n" * (MAX_UPLOAD // 4 + 100)
    for attempt in range(10):
        answer = limited.http.post(f"{limited.url}/api/v1/datasets", files={"file": ("big.csv", big)}, timeout=30)
        if attempt < 4:
            assert answer.status_code == 413, answer.text
            assert "AUTOML_MAX_UPLOAD_BYTES" in answer.json()["message"]
        else:
            assert answer.status_code == 429, answer.text
            assert "4 per 1 minute" in answer.json()["message"]
    assert limited.http.get(f"{limited.url}/api/v1/datasets", timeout=10).json() == []  # nothing kept
    assert requests.get(f"{limited.url}/healthz", timeout=10).status_code == 200


def test_an_upload_without_a_key_gets_its_401_not_a_reset(limited: Service) -> None:
    """Refused before the body is read, like 413 and 429: the body is drained first, so the client
    reads the 401 instead of a connection reset."""
    big = b"a,b\n" + b"1,2\n" * (MAX_UPLOAD * 8)
    for _ in range(10):
        answer = requests.post(f"{limited.url}/api/v1/datasets", files={"file": ("big.csv", big)}, timeout=30)
        assert answer.status_code == 401, answer.text
        assert "API key" in answer.json()["message"]


def test_an_upload_sent_chunked_is_read_whole_and_cut_at_the_limit(limited: Service) -> None:
    """A client streaming its upload sends it chunked, without a Content-Length: the server must hand the
    app the whole body (not an empty one), and the size limit still applies while it is read."""
    assert limited.env is not None
    client = as_key(create_key(limited.env, "streaming"))  # uploads of its own under the 4-a-minute limit
    url = f"{limited.url}/api/v1/datasets"

    def chunked(rows: int) -> tuple[Iterator[bytes], str]:
        table = "x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(rows))
        body, content_type = urllib3.encode_multipart_formdata({"file": ("rows.csv", table.encode())})
        return (body[i:i + 4096] for i in range(0, len(body), 4096)), content_type

    pieces, content_type = chunked(2_000)  # about 18 kB, within the limit
    stored = client.post(url, data=pieces, headers={"Content-Type": content_type}, timeout=30)
    assert stored.status_code == 201, stored.text
    assert stored.json()["n_rows"] == 2_000 and stored.json()["n_columns"] == 2
    pieces, content_type = chunked(20_000)  # about 200 kB: past AUTOML_MAX_UPLOAD_BYTES
    refused = client.post(url, data=pieces, headers={"Content-Type": content_type}, timeout=30)
    assert refused.status_code == 413, refused.text
    assert "AUTOML_MAX_UPLOAD_BYTES" in refused.json()["message"]
    assert [d["id"] for d in client.get(url, timeout=10).json()] == [stored.json()["id"]]  # nothing half-kept


def test_too_many_form_parts_is_413(limited: Service) -> None:
    parts = {f"field{i}": "x" for i in range(400)}
    answer = limited.http.post(f"{limited.url}/api/v1/models/{'0' * 32}/predict", files={"file": ("a.png", b"x")},
                               data=parts, timeout=30)
    assert answer.status_code == 413, answer.text
    # A small body: the message names the parts limit, not the upload size limit.
    message = answer.json()["message"]
    assert "too many parts (at most" in message and "AUTOML_MAX_UPLOAD_BYTES" not in message, message
    assert requests.get(f"{limited.url}/healthz", timeout=10).status_code == 200


def test_rate_limits_are_counted_in_redis_across_serving_processes(limited: Service) -> None:
    assert limited.env is not None
    key = create_key(limited.env, "analytics")
    statuses = []
    for _ in range(7):  # a new connection each time: both serving processes answer
        answer = as_key(key).post(f"{limited.url}/api/v1/datasets", files={"file": ("one.csv", b"a\n1\n")},
                                  timeout=30)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert 1 <= int(answer.headers["Retry-After"]) <= 60
            assert "4 per 1 minute" in answer.json()["message"]
    assert statuses == [422] * 4 + [429] * 3  # one count for the key, whichever process answered
    counters = [k.decode() for k in redis.Redis.from_url(RATE_REDIS).keys("*") if key[4:12].encode() in k]
    assert counters and all("upload" in k for k in counters)
    other = as_key(create_key(limited.env, "analytics")).post(f"{limited.url}/api/v1/datasets",
                                                             files={"file": ("one.csv", b"a\n1\n")}, timeout=30)
    assert other.status_code == 422  # another key of the same team has its own count
