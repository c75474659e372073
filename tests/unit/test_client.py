"""The Python client and the client half of the `automl` command, without a server: what they
import, how errors are typed, how progress reads, and the CLI's options. The same code against a
running service is in tests/integration/test_client_and_dashboard.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from api.cli import main as cli
from automl.client import Client
from automl.client.errors import (
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    JobFailed,
    NotFound,
    NotReady,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
    Unavailable,
    error_from_response,
)
from automl.client.progress import JobProgress, describe, line, time_left

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "keras_tuner", "flask", "flask_smorest", "sqlalchemy", "pandas", "numpy", "celery",
         "marshmallow", "pydantic_settings", "matplotlib", "sklearn")


def test_the_client_and_its_commands_import_nothing_of_the_server() -> None:
    probe = ("import sys, automl.client, automl.client.cli, api.cli; "
             f"print([m for m in {HEAVY!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_plain_install_is_the_light_client_and_the_server_is_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for heavy in ("tensorflow", "keras", "flask", "sqlalchemy", "pandas", "numpy", "celery"):
        assert heavy not in base
    server = " ".join(project["optional-dependencies"]["server"]).lower()
    for needed in ("tensorflow", "keras-tuner", "flask-smorest", "celery", "sqlalchemy"):
        assert needed in server
    assert project["scripts"]["automl"] == "api.cli:main"


@pytest.mark.parametrize(("status", "cls"), [(400, InvalidRequest), (401, Unauthorized), (404, NotFound),
                                             (409, Conflict), (413, TooLarge), (415, InvalidRequest),
                                             (422, InvalidRequest), (500, ServerError), (503, Unavailable)])
def test_errors_are_typed_by_status_and_carry_the_servers_message(status: int, cls: type[Exception]) -> None:
    body = {"code": status, "status": "x", "message": "max_trials must be at least 1.",
            "errors": {"json": {"max_trials": ["Must be greater than or equal to 1."]}}}
    error = error_from_response(status, "Reason", body)
    assert type(error) is cls
    assert error.status == status and error.message == "max_trials must be at least 1."
    assert error.errors == body["errors"]
    assert str(error) == (f"{status} max_trials must be at least 1. "
                          "(json: max_trials: Must be greater than or equal to 1.)")


def test_the_bodys_error_code_chooses_the_type_before_the_status() -> None:
    """A 409 ``not_ready`` (a model still training) is NotReady, not just a Conflict; every code the
    server can send has a client type."""
    from api.errors import ERROR_CODE_TO_HTTP_STATUS
    from automl.client.errors import BY_CODE

    error = error_from_response(409, "Conflict", {"error": "not_ready", "message": "Still training."})
    assert type(error) is NotReady and isinstance(error, Conflict) and error.error == "not_ready"
    assert type(error_from_response(409, "Conflict", {"error": "conflict", "message": "x"})) is Conflict
    assert type(error_from_response(503, "x", {"error": "broker_unavailable", "message": "x"})) is Unavailable
    assert set(ERROR_CODE_TO_HTTP_STATUS) <= set(BY_CODE)
    for code, cls in BY_CODE.items():
        status = ERROR_CODE_TO_HTTP_STATUS.get(code, 503 if "unavailable" in code else 500)
        assert type(error_from_response(status, "x", {"error": code, "message": "m"})) is cls


def test_rate_limits_carry_retry_after_and_non_json_bodies_keep_their_text() -> None:
    limited = error_from_response(429, "Too Many Requests", {"message": "Over 10 per minute."}, "7")
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0
    gateway = error_from_response(502, "Bad Gateway", "<html>upstream down</html>")
    assert isinstance(gateway, ServerError) and gateway.message == "<html>upstream down</html>"
    empty = error_from_response(503, "Service Unavailable", "")
    assert empty.message == "Service Unavailable"


def test_a_job_that_failed_or_timed_out_says_why() -> None:
    failed = JobFailed({"id": "j1", "state": "failed", "error": "3 trials in a row failed: OOM"})
    assert str(failed) == "job j1 failed: 3 trials in a row failed: OOM"
    assert JobFailed({"id": "j2", "state": "cancelled", "stop_reason": "cancelled"}).job["id"] == "j2"


def test_an_unreachable_service_is_a_connection_error_naming_it() -> None:
    with Client("http://127.0.0.1:9", api_key="k", retries=0) as client, \
            pytest.raises(ConnectionFailed, match=r"^cannot reach the service at http://127.0.0.1:9 \(Connection "
                                                  r"refused\); is it running, and is --url / AUTOML_URL right\?$"):
        client.jobs()


def test_url_and_key_come_from_arguments_then_environment_then_the_embedded_key_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOML_URL", raising=False)
    monkeypatch.delenv("AUTOML_API_KEY", raising=False)
    monkeypatch.setenv("AUTOML_DATA_DIR", str(tmp_path))
    assert Client().url == "http://127.0.0.1:8000" and Client().api_key is None
    (tmp_path / "admin-key").write_text("amk_fromfile\n")
    assert Client().http.headers["Authorization"] == "Bearer amk_fromfile"
    monkeypatch.setenv("AUTOML_URL", "http://automl.internal:8000/")
    monkeypatch.setenv("AUTOML_API_KEY", "amk_fromenv")
    assert (Client().url, Client().api_key) == ("http://automl.internal:8000", "amk_fromenv")
    assert Client("http://other", "amk_given").api_key == "amk_given"


RUNNING = {
    "id": "j", "state": "running", "trials_done": 3, "max_trials": 20, "max_epochs": 30, "objective": "val_loss",
    "best_score": 0.123456, "elapsed_s": 100.0, "eta_s": 400.0, "time_budget_s": None,
    "running_trials": [{"trial_id": "5", "number": 4, "epoch": 12}, {"trial_id": "4", "number": 3, "epoch": 27}],
}


def test_progress_reads_trials_epochs_best_and_time_left() -> None:
    assert describe(RUNNING) == {"state": "running", "trials": "3/20", "epoch": "trial 4 epoch 27/30, "
                                 "trial 5 epoch 12/30", "best": "val_loss 0.1235", "left": "6m40s left"}
    assert line(RUNNING) == ("running: trials 3/20 | trial 4 epoch 27/30, trial 5 epoch 12/30 | "
                             "best val_loss 0.1235 | 6m40s left")
    # The wall-clock budget caps the estimate; before any trial ended there is no estimate.
    assert time_left({**RUNNING, "time_budget_s": 160}) == "1m00s left"
    assert time_left({**RUNNING, "eta_s": None}) == "? left"
    assert time_left({**RUNNING, "eta_s": None, "time_budget_s": 7300, "elapsed_s": 0}) == "2h01m left"
    assert time_left({**RUNNING, "state": "succeeded"}) == "done"
    queued = {"id": "j", "state": "queued", "trials_done": 0, "max_trials": 5, "max_epochs": None,
              "objective": "val_accuracy", "best_score": None, "running_trials": []}
    assert line(queued) == "queued: trials 0/5 | - | best no score yet | ? left"


def test_progress_in_a_log_prints_a_line_per_change_not_per_poll() -> None:
    out = io.StringIO()
    progress = JobProgress(out, live=False)
    for job in (RUNNING, {**RUNNING, "eta_s": 390.0}, {**RUNNING, "eta_s": 380.0},
                {**RUNNING, "trials_done": 4, "running_trials": [], "eta_s": 300.0}):
        progress.update(job)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines == [line(RUNNING), line({**RUNNING, "trials_done": 4, "running_trials": [], "eta_s": 300.0})]


def test_progress_on_a_terminal_is_a_live_bar() -> None:
    out = io.StringIO()
    progress = JobProgress(out, live=True)
    progress.update(RUNNING)
    progress.update({**RUNNING, "state": "succeeded", "trials_done": 20, "running_trials": []})
    progress.close()
    text = out.getvalue()
    assert "20/20" in text and "best val_loss 0.1235" in text and "done" in text


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env={"AUTOML_URL": "http://127.0.0.1:9", **(env or {})})


def test_the_client_commands_are_part_of_automl_with_their_options() -> None:
    help_text = invoke("--help").output
    for command in ("upload", "train", "wait", "trials", "predict", "explain", "importance", "drift", "download",
                    "serve", "worker", "keys"):
        assert command in help_text
    train_help = invoke("train", "--help").output
    for option in ("--url", "--api-key", "--target", "--max-trials", "--max-epochs", "--time-budget", "--wait",
                   "--search-space", "--set"):
        assert option in train_help


def test_bad_options_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    result = invoke("train", "d1", "--target", "y", "--search-space", "{nope")
    assert result.exit_code == 2 and "--search-space" in result.output and "not valid JSON" in result.output
    result = invoke("train", "d1", "--set", "novalue")
    assert result.exit_code == 2 and "is not KEY=VALUE" in result.output
    result = invoke("upload", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2 and "does not exist" in result.output


def test_a_failure_is_one_line_and_exit_status_1() -> None:
    result = invoke("jobs", "--api-key", "k")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the service at http://127.0.0.1:9")


def test_the_options_a_job_is_submitted_with(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: dict[str, Any] = {}

    def submit(self: Client, dataset_id: str, target: Any = None, **options: Any) -> dict[str, Any]:
        sent.update(dataset_id=dataset_id, target=target, **options)
        return {"id": "job1", "tuner": options.get("tuner"), "max_trials": options.get("max_trials"),
                "objective": "val_loss"}

    monkeypatch.setattr(Client, "submit", submit)
    result = invoke("train", "d1", "--target", "a", "--target", "b", "--max-trials", "4", "--tuner", "random",
                    "--time-budget", "60", "--search-space", '{"num_layers": [1, 2]}', "--set", "seed=7",
                    "--set", "refit=false", "--set", "objective=val_auc", "--api-key", "k")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "job1"
    assert sent == {"dataset_id": "d1", "target": ["a", "b"], "max_trials": 4, "tuner": "random",
                    "time_budget_s": 60, "search_space": {"num_layers": [1, 2]}, "seed": 7, "refit": False,
                    "objective": "val_auc"}
    json.loads(invoke("train", "d1", "--json", "--api-key", "k").stdout)  # --json prints the job


def test_a_dataframe_is_sent_with_missing_values_as_null_and_dates_as_iso_text() -> None:
    """pandas fills a missing cell with NaN, NaT or NA, and dates are Timestamps: none of them is JSON."""
    import numpy as np
    import pandas as pd

    from automl.client.client import _instances

    frame = pd.DataFrame({"size": [1.5, np.nan], "colour": ["red", None], "count": [3, 4],
                          "when": pd.to_datetime(["2024-05-17 08:30", None]),
                          "flag": pd.array([True, None], dtype="boolean")})
    body = _instances(frame, None)
    assert body["instances"] == [
        {"size": 1.5, "colour": "red", "count": 3, "when": "2024-05-17T08:30:00", "flag": True},
        {"size": None, "colour": None, "count": 4, "when": None, "flag": None},
    ]
    json.dumps(body, allow_nan=False)  # what requests sends
    assert type(body["instances"][0]["count"]) is int
