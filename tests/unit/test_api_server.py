"""The API server's settings (``api.server``). The server itself runs in every integration test:
``automl serve`` starts it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.server import ServerOptions, drop_request_variables, fresh_metrics_dir


def test_options_come_from_the_documented_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_BIND", "0.0.0.0:9000")
    monkeypatch.setenv("AUTOML_API_WORKERS", "3")
    monkeypatch.setenv("AUTOML_API_THREADS", "6")
    assert ServerOptions.from_env() == ServerOptions(host="0.0.0.0", port=9000, workers=3, threads=6)
    monkeypatch.setenv("AUTOML_BIND", "[::1]:8080")  # IPv6, bracketed as in a URL
    assert ServerOptions.from_env().host == "::1" and ServerOptions.from_env().port == 8080
    for name in ("AUTOML_BIND", "AUTOML_API_WORKERS", "AUTOML_API_THREADS"):
        monkeypatch.delenv(name)
    assert ServerOptions.from_env() == ServerOptions(host="127.0.0.1", port=8000, workers=2, threads=4)


def test_the_metrics_folder_starts_empty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Counter files of an earlier run in the folder would be summed into this run's /metrics."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old counts")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    assert fresh_metrics_dir() == str(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    made = Path(fresh_metrics_dir())  # none given: a new folder, handed to the workers through the environment
    assert made.is_dir() and list(made.iterdir()) == []
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(made)
    made.rmdir()


def test_variables_that_would_read_as_request_headers_are_dropped() -> None:
    """granian copies the process environment into each request's environ: HTTP_PROXY there would be a
    "Proxy" header in every request that did not send one."""
    environ = {"HTTP_PROXY": "http://proxy:3128", "CONTENT_TYPE": "text/plain", "http_proxy": "http://proxy:3128",
               "AUTOML_BIND": "0.0.0.0:8000", "PATH": "/usr/bin"}
    assert sorted(drop_request_variables(environ)) == ["CONTENT_TYPE", "HTTP_PROXY"]
    assert environ == {"http_proxy": "http://proxy:3128", "AUTOML_BIND": "0.0.0.0:8000", "PATH": "/usr/bin"}
