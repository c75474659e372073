"""Per-key limits on long or heavy requests: event streams, downloads and batch scorings held open at
once (429 naming the setting, per key: another key is not affected, and a closed answer frees its
slot), and batch scoring's row and time limits (413 saying to split the file)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.conftest import make_key
from tests.seed import ROW, Owned, tiny_model
from tests.unit.test_access import as_key, seeded_app


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models"))


def test_a_key_holds_at_most_its_streams_and_a_closed_one_frees_its_slot(tmp_path: Path, model_dir: Path) -> None:
    app = seeded_app(tmp_path, model_dir, key_max_streams=2)
    owned: Owned = app.config["owned"]["alpha"]
    store, slots = app.extensions["automl"].store, app.extensions["automl"].slots
    key = make_key(store, "alpha")
    client, other = as_key(app, key), as_key(app, make_key(store, "alpha"))
    path = f"/api/v1/jobs/{owned.job}/events"
    held = [client.get(path, buffered=False) for _ in range(2)]
    assert [r.status_code for r in held] == [200, 200]
    refused = client.get(path)
    assert refused.status_code == 429 and "AUTOML_KEY_MAX_STREAMS" in refused.get_json()["message"]
    assert refused.headers["Retry-After"] == "5"
    extra = other.get(path, buffered=False)  # another key has slots of its own
    assert extra.status_code == 200
    extra.close()
    held.pop().close()
    again = client.get(path, buffered=False)
    assert again.status_code == 200 and again.get_data().startswith(b"retry:")
    again.close()
    for response in held:
        response.close()
    assert slots.held("stream", key[4:12]) == 0


def test_downloads_are_limited_and_a_failed_one_gives_its_slot_back(tmp_path: Path, model_dir: Path) -> None:
    app = seeded_app(tmp_path, model_dir, key_max_downloads=1)
    owned: Owned = app.config["owned"]["alpha"]
    store, slots = app.extensions["automl"].store, app.extensions["automl"].slots
    key = make_key(store, "alpha")
    client = as_key(app, key)
    assert client.get(f"/api/v1/jobs/{owned.job}/tensorboard.zip").status_code == 409  # no logs: fails inside
    assert slots.held("download", key[4:12]) == 0
    first = client.get(f"/api/v1/models/{owned.model}/download", buffered=False)
    assert first.status_code == 200
    second = client.get(f"/api/v1/models/{owned.model}/download")
    assert second.status_code == 429 and "AUTOML_KEY_MAX_DOWNLOADS" in second.get_json()["message"]
    first.close()
    third = client.get(f"/api/v1/models/{owned.model}/download")
    assert third.status_code == 200 and len(third.get_data()) > 1000  # the whole .keras file, then closed
    third.close()
    assert slots.held("download", key[4:12]) == 0


def _rows_csv(n: int) -> bytes:
    header = ",".join(ROW)
    line = ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in ROW.values())
    return (header + "\n" + "\n".join([line] * n) + "\n").encode()


def test_batch_scoring_has_a_row_limit_a_time_limit_and_slots(tmp_path: Path, model_dir: Path) -> None:
    app = seeded_app(tmp_path / "rows", model_dir, batch_max_rows=10)
    owned: Owned = app.config["owned"]["alpha"]
    key = make_key(app.extensions["automl"].store, "alpha")
    client = as_key(app, key)

    def score(c: object, body: bytes) -> object:
        return c.post(f"/api/v1/models/{owned.model}/predict",  # type: ignore[attr-defined]
                      data={"file": (io.BytesIO(body), "rows.csv")}, content_type="multipart/form-data")

    scored = score(client, _rows_csv(10))
    assert scored.status_code == 200 and scored.headers["X-Rows-Scored"] == "10"  # type: ignore[attr-defined]
    assert app.extensions["automl"].slots.held("batch", key[4:12]) == 1  # held while the answer is open
    scored.close()  # type: ignore[attr-defined]
    over = score(client, _rows_csv(11))
    assert over.status_code == 413 and "AUTOML_BATCH_MAX_ROWS" in over.get_json()["message"]  # type: ignore
    assert "Split the file" in over.get_json()["message"]  # type: ignore[attr-defined]
    assert app.extensions["automl"].slots.held("batch", key[4:12]) == 0  # refused or done: slot given back

    slow = seeded_app(tmp_path / "time", model_dir, batch_max_s=1e-9)
    slow_owned: Owned = slow.config["owned"]["alpha"]
    slow_client = as_key(slow, make_key(slow.extensions["automl"].store, "alpha"))
    late = slow_client.post(f"/api/v1/models/{slow_owned.model}/predict",
                            data={"file": (io.BytesIO(_rows_csv(3)), "rows.csv")}, content_type="multipart/form-data")
    assert late.status_code == 413 and "AUTOML_BATCH_MAX_S" in late.get_json()["message"]
