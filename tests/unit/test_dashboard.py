"""The dashboard's files as the API serves them: open (they hold no data), locked down by a
Content-Security-Policy, nothing from outside this origin, and the vendored uPlot exactly the
release its manifest names. The page driving a real job in Chromium is in
tests/integration/test_client_and_dashboard.py."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from flask import Flask

from api import create_app
from api.dashboard import STATIC_URL
from automl.settings import Settings

DASHBOARD = Path(__file__).resolve().parents[2] / "api" / "dashboard"
STATIC = DASHBOARD / "static"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("dashboard") / "var"))


def test_the_page_and_its_files_are_served_without_a_key_under_a_strict_policy(app: Flask) -> None:
    anonymous = app.test_client()
    page = anonymous.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'<script src="/dashboard/static/app.js"' in page.data
    for path in ("/", *(f"{STATIC_URL}/{name}" for name in ("app.js", "style.css", "vendor/uPlot.iife.min.js",
                                                             "vendor/uPlot.min.css"))):
        answer = anonymous.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        answer.close()
    assert anonymous.get(f"{STATIC_URL}/../../app.py").status_code == 404
    # The data stays behind the key.
    assert anonymous.get("/api/v1/datasets").status_code == 401
    assert "Content-Security-Policy" not in anonymous.get("/healthz").headers


def test_nothing_is_loaded_from_outside_this_origin() -> None:
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://|//cdn", text), name
    html = (STATIC / "index.html").read_text()
    assert set(re.findall(r'(?:src|href)="([^"#]+)"', html)) == {
        "data:,", "/dashboard/static/vendor/uPlot.min.css", "/dashboard/static/style.css",
        "/dashboard/static/vendor/uPlot.iife.min.js", "/dashboard/static/app.js", "/api/v1/docs"}


def test_the_page_writes_text_never_markup() -> None:
    # Dataset names, column names and labels are user data: the page must not parse them as HTML.
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_the_vendored_chart_library_is_the_release_its_manifest_names() -> None:
    manifest = json.loads((DASHBOARD / "vendor.json").read_text())["uplot"]
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest, name
    banner = (STATIC / "vendor" / "uPlot.iife.min.js").read_text()[:80]
    assert f"(v{manifest['version']})" in banner
    assert manifest["tarball"].endswith(f"uplot-{manifest['version']}.tgz") and manifest["license"] == "MIT"
