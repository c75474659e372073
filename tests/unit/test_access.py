"""API keys and teams: every route needs a key, keys are stored hashed, each team sees only its own
datasets, jobs, models and aliases (another team's are 404, exactly like ids that do not exist), admins
see everything, and per-key rate limits answer 429 with Retry-After.

In process, over the real app factory, SQLite and a real (tiny) Keras model.
"""

from __future__ import annotations

import io
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from api.cli import _first_admin_key
from api.cli import main as cli
from automl.settings import Settings
from automl.store import Store
from automl.store.records import ApiKeyRecord, JobRecord
from tests.conftest import make_key
from tests.seed import ROW, SHARED_ALIAS, Owned, seed_team, tiny_model

OPEN = ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models"))


def seeded_app(folder: Path, model_dir: Path, **settings: Any) -> Flask:
    """The app over a store where teams alpha and beta each own a dataset, a job, a model and aliases."""
    app = create_app(Settings(data_dir=folder / "var", key_cache_s=0, **settings))
    store = app.extensions["automl"].store
    app.config["owned"] = {team: seed_team(store, team, model_dir, folder) for team in ("alpha", "beta")}
    return app


@pytest.fixture
def app(tmp_path: Path, model_dir: Path) -> Flask:
    return seeded_app(tmp_path, model_dir)


def as_key(app: Flask, key: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def team_client(app: Flask, team: str, admin: bool = False) -> FlaskClient:
    return as_key(app, make_key(app.extensions["automl"].store, team, admin))


def routes(o: Owned) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that names one of a team's resources, with a request its owner may make."""
    predict = {"json": {"instances": [ROW]}}
    csv = {"data": {"file": (io.BytesIO(b"size,flag,colour name\n1,true,red\n"), "rows.csv")},
           "content_type": "multipart/form-data"}
    return [
        ("GET", f"/api/v1/datasets/{o.dataset}", {}),
        ("GET", f"/api/v1/jobs/{o.job}", {}),
        ("GET", f"/api/v1/jobs/{o.job}/trials", {}),
        ("GET", f"/api/v1/jobs/{o.job}/trials/{o.trial}/history", {}),
        ("GET", f"/api/v1/jobs/{o.job}/trials/{o.trial}/history.png", {}),
        ("GET", f"/api/v1/jobs/{o.job}/events", {}),
        ("POST", f"/api/v1/jobs/{o.job}/cancel", {}),
        ("GET", f"/api/v1/jobs/{o.job}/tensorboard.zip", {}),  # the owner: 409, no logs were written
        ("GET", f"/api/v1/models/{o.model}", {}),
        ("GET", f"/api/v1/models/{o.alias}", {}),
        ("GET", f"/api/v1/models/{o.model}/history", {}),
        ("GET", f"/api/v1/models/{o.model}/history.png", {}),
        ("POST", f"/api/v1/models/{o.model}/predict", predict),
        ("POST", f"/api/v1/models/{o.alias}/predict", predict),
        ("POST", f"/api/v1/models/{o.model}/predict_proba", predict),
        ("POST", f"/api/v1/models/{o.model}/predict_proba", csv),
        ("GET", f"/api/v1/models/{o.model}/download", {}),
        ("POST", f"/api/v1/models/{o.model}/deploy", {}),
        ("DELETE", f"/api/v1/models/{o.model}/deploy", {}),
        ("GET", f"/api/v1/aliases/{o.alias}", {}),
        ("PUT", "/api/v1/aliases/new-name", {"json": {"model_id": o.model}}),
        ("GET", f"/v1/models/{o.model}", {}),
        ("GET", f"/v1/models/{o.alias}", {}),
        ("POST", f"/v1/models/{o.model}:predict", {"json": {"instances": [ROW]}}),
        ("POST", "/api/v1/jobs", {"json": {"dataset_id": o.dataset, "target": "label", "max_trials": 1}}),
    ]


def call(client: FlaskClient, method: str, path: str, options: dict[str, Any]) -> Any:
    options = dict(options)
    if "data" in options:  # a fresh file object per request
        options["data"] = {k: (io.BytesIO(v[0].getvalue()), v[1]) for k, v in options["data"].items()}
    return client.open(path, method=method, buffered=True, **options)  # a stream read and closed within its request


def test_every_api_route_needs_a_valid_key(app: Flask) -> None:
    anonymous = app.test_client()
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith(("/api/v1/", "/v1/"))
             and not r.rule.startswith(("/api/v1/openapi.json", "/api/v1/docs"))]
    assert len(rules) >= 20
    for rule in rules:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            answer = anonymous.open(path, method=method)
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert "Authorization: Bearer" in answer.get_json()["message"]
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    for path in OPEN:
        assert anonymous.get(path).status_code in (200, 308, 503), path  # readyz: 503 until warm

    store = app.extensions["automl"].store
    key = make_key(store, "alpha")
    tampered = key[:-1] + ("B" if key[-1] == "A" else "A")  # never the key itself (1 in 64 ended in A)
    for bad in ("Bearer", f"Basic {key}", "Bearer amk_nothex_x", f"Bearer {tampered}", f"Bearer {key}x"):
        answer = app.test_client().get("/api/v1/datasets", headers={"Authorization": bad})
        assert answer.status_code == 401, bad
    assert as_key(app, key).get("/api/v1/datasets").status_code == 200


def test_keys_are_stored_hashed_and_revocation_takes_effect(app: Flask, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--team", "gamma", "--name", "notebook"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert re.fullmatch(r"amk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key)
    key_id, secret = key[4:12], key[13:]
    database = (tmp_path / "var" / "automl.db").read_bytes() + (tmp_path / "var" / "automl.db-wal").read_bytes()
    assert key.encode() not in database and secret.encode() not in database
    with app.extensions["automl"].store.session() as session:
        record = session.get(ApiKeyRecord, key_id)
        assert record is not None and record.team == "gamma" and len(record.digest) == 64 and record.role == "write"

    client = as_key(app, key)
    assert client.get("/api/v1/models").get_json() == []  # a new team owns nothing yet
    listed = runner.invoke(cli, ["keys", "list"])
    assert key_id in listed.output and "gamma" in listed.output and "notebook" in listed.output
    assert key not in listed.output and secret not in listed.output

    revoked = runner.invoke(cli, ["keys", "revoke", key])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    answer = client.get("/api/v1/models")
    assert answer.status_code == 401 and "revoked" in answer.get_json()["message"]
    assert key_id not in runner.invoke(cli, ["keys", "list"]).output
    assert key_id in runner.invoke(cli, ["keys", "list", "--all"]).output
    assert runner.invoke(cli, ["keys", "create", "--team", "Not A Team"]).exit_code != 0
    assert runner.invoke(cli, ["keys", "revoke", "0000ffff"]).exit_code != 0


def test_another_teams_resources_are_not_found_on_every_route(app: Flask) -> None:
    owned: dict[str, Owned] = app.config["owned"]
    alpha, beta = team_client(app, "alpha"), team_client(app, "beta")
    for method, path, options in routes(owned["alpha"]):
        mine = call(alpha, method, path, options)  # found (a finished job cannot be cancelled: 409)
        assert mine.status_code not in (401, 404) and mine.status_code < 500, \
            (method, path, mine.status_code, mine.get_data(as_text=True)[:300])
        theirs = call(beta, method, path, options)
        assert theirs.status_code == 404, (method, path, theirs.status_code)
        # Word for word what an id that does not exist gets: nothing tells the resource exists.
        missing = call(beta, method, path.replace("alpha-", "nosuch-"), options)
        if "new-name" not in path:
            assert theirs.get_json()["message"] == missing.get_json()["message"].replace("nosuch-", "alpha-")

    with app.extensions["automl"].store.session() as session:  # beta's cancel changed nothing
        assert not session.get(JobRecord, "alpha-job").cancel_requested  # type: ignore[union-attr]
        assert session.query(JobRecord).filter(JobRecord.team == "beta").count() == 1


def test_lists_hold_only_the_teams_own_and_an_admin_sees_all(app: Flask) -> None:
    owned: dict[str, Owned] = app.config["owned"]
    beta, admin = team_client(app, "beta"), team_client(app, "ops", admin=True)
    for family, key in (("datasets", "dataset"), ("jobs", "job"), ("models", "model")):
        seen = {item["id"] for item in beta.get(f"/api/v1/{family}").get_json()}
        assert seen == {getattr(owned["beta"], key)}, family
        everything = {item["id"] for item in admin.get(f"/api/v1/{family}").get_json()}
        assert everything == {getattr(owned["alpha"], key), getattr(owned["beta"], key)}, family
        assert all(item["team"] in ("alpha", "beta") for item in admin.get(f"/api/v1/{family}").get_json())
    aliases = [(a["team"], a["name"]) for a in beta.get("/api/v1/aliases").get_json()]
    assert aliases == [("beta", "beta-alias"), ("beta", SHARED_ALIAS)]
    assert len(admin.get("/api/v1/aliases").get_json()) == 4
    for method, path, options in routes(owned["alpha"]):
        if path.endswith("/jobs"):
            continue  # an admin's job belongs to its own team
        answer = call(admin, method, path, options)
        assert answer.status_code not in (401, 404) and answer.status_code < 500, (method, path, answer.status_code)
    # The same alias name in two teams: an admin must use the model id (409 says so).
    assert beta.get(f"/api/v1/models/{SHARED_ALIAS}").get_json()["id"] == owned["beta"].model
    ambiguous = admin.get(f"/api/v1/aliases/{SHARED_ALIAS}")
    assert ambiguous.status_code == 409 and "model id" in ambiguous.get_json()["message"]


def test_alias_names_are_per_team(app: Flask) -> None:
    owned: dict[str, Owned] = app.config["owned"]
    alpha, beta = team_client(app, "alpha"), team_client(app, "beta")
    assert beta.put("/api/v1/aliases/prod", json={"model_id": owned["alpha"].model}).status_code == 404
    assert alpha.put("/api/v1/aliases/prod", json={"model_id": owned["alpha"].model}).status_code == 201
    assert beta.get("/api/v1/aliases/prod").status_code == 404
    assert beta.delete("/api/v1/aliases/prod").status_code == 404
    assert beta.put("/api/v1/aliases/prod", json={"model_id": owned["beta"].model}).status_code == 201
    assert alpha.get("/api/v1/aliases/prod").get_json()["model_id"] == owned["alpha"].model
    assert beta.get("/api/v1/models/prod").get_json()["id"] == owned["beta"].model
    assert beta.delete("/api/v1/aliases/prod").status_code == 204
    assert alpha.get("/api/v1/models/prod").get_json()["id"] == owned["alpha"].model


def test_loaded_models_stay_private(app: Flask) -> None:
    """The fast path (a model already loaded in this process skips the database) checks the owner too."""
    owned: dict[str, Owned] = app.config["owned"]
    alpha, beta = team_client(app, "alpha"), team_client(app, "beta")
    path = f"/api/v1/models/{owned['alpha'].model}/predict"
    assert alpha.post(path, json={"instances": [ROW]}).status_code == 200
    assert app.extensions["automl"].models.peek(owned["alpha"].model) is not None
    assert beta.post(path, json={"instances": [ROW]}).status_code == 404


def test_idempotency_keys_are_per_team(app: Flask) -> None:
    owned: dict[str, Owned] = app.config["owned"]
    alpha, beta = team_client(app, "alpha"), team_client(app, "beta")
    headers = {"Idempotency-Key": "nightly-1"}
    body = {"dataset_id": owned["alpha"].dataset, "target": "size", "max_trials": 1, "max_epochs": 1}
    first = alpha.post("/api/v1/jobs", json=body, headers=headers)
    assert first.status_code == 202, first.get_json()
    other = beta.post("/api/v1/jobs", json={**body, "dataset_id": owned["beta"].dataset}, headers=headers)
    assert other.status_code == 202 and other.get_json()["id"] != first.get_json()["id"]
    assert other.get_json()["team"] == "beta" and "Idempotent-Replayed" not in other.headers


def test_rate_limits_are_per_key_and_say_when_to_retry(tmp_path: Path, model_dir: Path) -> None:
    app = seeded_app(tmp_path, model_dir, rate_limit_predict="3/minute", rate_limit_upload="2/minute",
                     rate_limit_jobs="2/minute")
    owned: dict[str, Owned] = app.config["owned"]
    store = app.extensions["automl"].store
    first, second = as_key(app, make_key(store, "alpha")), as_key(app, make_key(store, "alpha"))
    path = f"/api/v1/models/{owned['alpha'].model}/predict"
    assert [first.post(path, json={"instances": [ROW]}).status_code for _ in range(3)] == [200, 200, 200]
    limited = first.post(path, json={"instances": [ROW]})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "3 per 1 minute" in limited.get_json()["message"] and "Retry after" in limited.get_json()["message"]
    assert first.post("/v1/models/alpha-model:predict", json={"instances": [ROW]}).status_code == 429
    assert first.get(f"/api/v1/models/{owned['alpha'].model}").status_code == 200  # reads are not limited
    assert second.post(path, json={"instances": [ROW]}).status_code == 200  # another key, its own count

    uploads = [first.post("/api/v1/datasets", data={"file": (io.BytesIO(b"a\n1\n"), "t.csv")},
                          content_type="multipart/form-data").status_code for _ in range(3)]
    assert uploads[:2] == [422, 422] and uploads[2] == 429  # refused uploads count too
    jobs = [first.post("/api/v1/jobs", json={"dataset_id": "none", "target": "x"}).status_code for _ in range(3)]
    assert jobs == [404, 404, 429]


def test_embedded_first_start_creates_and_prints_an_admin_key_once(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    settings.ensure_dirs()
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    _first_admin_key(settings, store)
    printed = capsys.readouterr().err
    key = settings.admin_key_file.read_text().strip()
    assert key in printed and str(settings.admin_key_file) in printed
    assert stat.S_IMODE(settings.admin_key_file.stat().st_mode) == 0o600
    _first_admin_key(settings, store)  # a later start: where the key is, never the key
    again = capsys.readouterr().err
    assert key not in again and str(settings.admin_key_file) in again
    client = as_key(create_app(settings, migrate=False), key)
    assert client.get("/api/v1/datasets").status_code == 200

    distributed = Settings(data_dir=tmp_path / "other", database_url=f"sqlite:///{tmp_path / 'other.db'}")
    distributed.ensure_dirs()
    other = Store(distributed.sqlalchemy_url)
    other.migrate()
    _first_admin_key(distributed, other)  # a configured database: no key appears by itself
    assert "automl keys create" in capsys.readouterr().err
    assert not distributed.admin_key_file.exists()


def _least_role(method: str, path: str) -> str:
    """The role each route of ``routes()`` needs: predictions and model cards ``predict``, other GETs
    ``read``, everything else ``write``."""
    if path.startswith("/v1/") or path.endswith(("/predict", "/predict_proba")):
        return "predict"
    if method == "GET" and re.fullmatch(r"/api/v1/models/[^/]+", path):
        return "predict"
    return "read" if method == "GET" else "write"


def test_each_role_does_what_it_may_and_gets_403_naming_the_role_it_needs(app: Flask) -> None:
    owned: dict[str, Owned] = app.config["owned"]
    store = app.extensions["automl"].store
    order = ["predict", "read", "write"]
    clients = {role: as_key(app, make_key(store, "alpha", role=role)) for role in order}
    for method, path, options in routes(owned["alpha"]):
        needed = _least_role(method, path)
        for role, client in clients.items():
            answer = call(client, method, path, options)
            if order.index(role) >= order.index(needed):
                assert answer.status_code not in (401, 403, 404) and answer.status_code < 500, \
                    (role, method, path, answer.status_code, answer.get_data(as_text=True)[:200])
            else:
                assert answer.status_code == 403, (role, method, path, answer.status_code)
                message = answer.get_json()["message"]
                assert f"role '{needed}'" in message and f"this key's role is '{role}'" in message, message
                assert answer.get_json()["error"] == "forbidden"
    for role, client in clients.items():  # keys and other teams are for admins only
        refused = client.get("/api/v1/keys")
        assert refused.status_code == 403 and "role 'admin'" in refused.get_json()["message"], role
    with store.session() as session:  # the refused write changed nothing
        assert not session.get(JobRecord, "alpha-job").cancel_requested  # type: ignore[union-attr]


def test_every_route_declares_the_role_it_needs(app: Flask) -> None:
    from api.auth import needed_role
    from automl.access import Role

    seen: dict[tuple[str, str], str] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/v1/", "/v1/")) or rule.rule.startswith(("/api/v1/openapi", "/api/v1/docs")):
            continue
        view_class = app.view_functions[rule.endpoint].view_class  # type: ignore[attr-defined]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            seen[(method, rule.rule)] = needed_role(getattr(view_class, method.lower()), method).name
    assert seen[("POST", "/api/v1/keys")] == seen[("GET", "/api/v1/keys")] == "admin"
    assert seen[("DELETE", "/api/v1/keys/<string:key_id>")] == "admin"
    assert seen[("POST", "/api/v1/models/<string:model_id>/predict")] == "predict"
    assert seen[("GET", "/v1/models/<string:name>")] == "predict"
    assert seen[("DELETE", "/api/v1/models/<string:model_id>")] == "write"
    assert seen[("GET", "/api/v1/models/<string:model_id>/download")] == "read"
    assert {Role[role] for role in seen.values()} == set(Role)


def test_an_expired_key_is_refused_and_says_so(app: Flask) -> None:
    from datetime import timedelta

    from automl.store.records import utcnow

    store = app.extensions["automl"].store
    expired = as_key(app, make_key(store, "alpha", expires_at=utcnow() - timedelta(seconds=1)))
    answer = expired.get("/api/v1/datasets")
    assert answer.status_code == 401 and "expired" in answer.get_json()["message"]
    valid = as_key(app, make_key(store, "alpha", expires_at=utcnow() + timedelta(days=1)))
    assert valid.get("/api/v1/datasets").status_code == 200


def test_admins_manage_keys_over_rest_and_a_key_is_shown_once(app: Flask) -> None:
    admin = team_client(app, "ops", admin=True)
    created = admin.post("/api/v1/keys", json={"team": "gamma", "role": "predict", "name": "scorer",
                                               "expires_in": "90d"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    key = body["key"]
    assert key.startswith(f"amk_{body['id']}_") and body["role"] == "predict" and body["team"] == "gamma"
    assert body["expires_at"] is not None and body["revoked_at"] is None
    scorer = as_key(app, key)
    assert scorer.get("/api/v1/models").status_code == 403  # a list is a read, not a prediction
    listed = admin.get("/api/v1/keys?team=gamma")
    assert [k["id"] for k in listed.get_json()] == [body["id"]]
    assert key not in listed.get_data(as_text=True) and "key" not in listed.get_json()[0]
    assert admin.delete(f"/api/v1/keys/{body['id']}").status_code == 204
    answer = scorer.get("/v1/models/anything")
    assert answer.status_code == 401 and "revoked" in answer.get_json()["message"]
    assert admin.get("/api/v1/keys?team=gamma").get_json() == []
    assert [k["id"] for k in admin.get("/api/v1/keys?team=gamma&revoked=true").get_json()] == [body["id"]]
    for bad, field in (({"team": "Bad Team"}, "team"), ({"team": "g", "role": "root"}, "role"),
                       ({"team": "g", "expires_in": "soon"}, "expires_in")):
        refused = admin.post("/api/v1/keys", json=bad)
        assert refused.status_code == 422 and field in str(refused.get_json()), (bad, refused.get_json())
    assert admin.delete("/api/v1/keys/0000ffff").status_code == 404


def test_cli_creates_keys_with_a_role_and_an_expiry(app: Flask, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--team", "gamma", "--role", "read", "--expires-in", "2w"])
    assert created.exit_code == 0, created.output
    assert "'read' key" in created.stderr and "expires" in created.stderr
    key_id = created.stdout.strip()[4:12]
    listed = runner.invoke(cli, ["keys", "list"]).output
    line = next(row for row in listed.splitlines() if row.startswith(key_id))
    assert " read " in line and line.count("20") >= 2  # created and expires
    assert runner.invoke(cli, ["keys", "create", "--team", "g", "--expires-in", "forever"]).exit_code != 0
    assert runner.invoke(cli, ["keys", "create", "--team", "g", "--role", "read", "--admin"]).exit_code != 0


def test_an_unreachable_limits_store_is_counted_and_fails_open_or_closed_as_configured() -> None:
    from prometheus_client import REGISTRY

    from api.keys import RateLimits
    from automl.errors import LimitsUnavailable

    def failures() -> float:
        return REGISTRY.get_sample_value("automl_rate_limit_store_failures_total", {"action": "predict"}) or 0.0

    before = failures()
    unreachable = "redis://127.0.0.1:1"  # nothing listens on port 1
    RateLimits(unreachable, {"predict": "10/second"}).hit("predict", "k1")  # served, uncounted
    assert failures() == before + 1
    closed = RateLimits(unreachable, {"predict": "10/second"}, fail_open=False)
    with pytest.raises(LimitsUnavailable, match="Try again shortly"):
        closed.hit("predict", "k1")
    assert failures() == before + 2


def test_the_in_memory_limits_store_counts_without_a_thread_per_hit_and_sweeps_expired_keys() -> None:
    """The embedded mode's store replaces a private method of ``limits``' MemoryStorage (which started
    a timer thread on nearly every hit); this fails loudly if an upgrade of ``limits`` renames it."""
    import time

    from limits.storage import MemoryStorage

    from api.keys import RateLimits, SweptMemoryStorage
    from automl.errors import RateLimited

    assert callable(getattr(MemoryStorage, "_MemoryStorage__schedule_expiry", None))
    assert callable(getattr(MemoryStorage, "_MemoryStorage__expire_events", None))
    limits = RateLimits("memory://", {"predict": "50/second"})
    storage = limits._storage
    assert isinstance(storage, SweptMemoryStorage)
    first = storage.timer  # the one timer the library's constructor starts; it made a new one per hit
    first.join()  # once it has run, the library's store would start another on the next hit
    for _ in range(50):
        limits.hit("predict", "k1")
    assert storage.timer is first
    with pytest.raises(RateLimited, match="50 per 1 second"):
        limits.hit("predict", "k1")
    limits.hit("predict", "k2")  # per key

    storage.incr("short-lived", expiry=0.01)
    time.sleep(0.05)
    storage._next_sweep = 0.0  # as if a second had passed since the last sweep
    storage.incr("another", expiry=60)  # the next write sweeps
    assert "short-lived" not in storage.storage and "short-lived" not in storage.expirations
    assert storage.get("another") == 1
