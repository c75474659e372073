"""Schemathesis against the service's own OpenAPI document, in process (WSGI): generated requests for
every operation, valid and invalid, with a real key over a store that holds a dataset, a finished job
and a real model, so that bodies reach the code behind the ids. Any 5xx, any answer that breaks the
documented schema or content type, and any route that answers without a key fail the test."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from automl.settings import Settings
from tests.conftest import make_key
from tests.seed import seed_team, tiny_model

EXAMPLES = 40  # per operation, the same cases every run (derandomized)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, status_code_conformance,
          ignored_auth]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("fuzz")
    # Limits stay the defaults except the per-key rate limits, which fuzzing would otherwise reach.
    app = create_app(Settings(data_dir=root / "var", rate_limit_predict="", rate_limit_upload="",
                              rate_limit_jobs=""))
    store = app.extensions["automl"].store
    owned = seed_team(store, "default", tiny_model(root / "models"), root)
    key = make_key(store, "default")
    config = schemathesis.Config.from_dict({
        "headers": {"Authorization": f"Bearer {key}"},
    })
    ids = {"dataset_id": owned.dataset, "job_id": owned.job, "trial_id": owned.trial, "model_id": owned.model,
           "name": owned.alias}
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config), ids


def test_api_conforms_to_its_openapi_document(fuzzed: Any) -> None:
    fuzzed, ids = fuzzed
    failures: list[str] = []
    tested = 0
    statuses: Counter[int] = Counter()
    for result in fuzzed.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/events"):
            continue  # an event stream of a finished job: tests/integration/test_job_control.py

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)
        def run(case: Any) -> None:
            # Real ids, so that generated bodies reach the code behind them (unknown ids: test_access.py).
            case.path_parameters = {k: ids.get(k, v) for k, v in (case.path_parameters or {}).items()}
            statuses[case.call_and_validate(checks=CHECKS).status_code] += 1

        try:
            run()
        except Exception as exc:  # every operation is fuzzed; the failures are reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:2000]}")
        tested += 1
    assert tested >= 20
    assert not failures, "\n\n".join(failures)
    print("fuzzed statuses:", dict(sorted(statuses.items())))
    assert sum(statuses.values()) >= 20 * tested // 2
    assert statuses[200] + statuses[201] + statuses[202] >= 50  # the valid cases reach the code behind the ids


def test_the_fuzzed_document_covers_the_api(fuzzed: Any) -> None:
    operations = {f"{op.ok().method.upper()} {op.ok().path}" for op in fuzzed[0].get_all_operations()}
    for needed in ("POST /api/v1/datasets", "POST /api/v1/jobs", "POST /api/v1/models/{model_id}/predict",
                   "POST /api/v1/models/{model_id}/predict_proba", "PUT /api/v1/aliases/{name}",
                   "POST /v1/models/{name}:predict"):
        assert needed in operations, sorted(operations)


