"""The web dashboard at ``/``: a static single page (``static/``) that calls the same REST API with
the same keys, entered by the user and kept in the browser's session storage.

No server-side rendering and no data here: the page and its files are open, every number on it
comes from ``/api/v1`` with the user's key. Charts use uPlot, vendored under ``static/vendor``
from the npm registry (version and checksums in ``vendor.json``; ``make dashboard-vendor``
refreshes it); nothing is loaded from a CDN, and the Content-Security-Policy allows only this
origin.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, send_from_directory

STATIC_URL = "/dashboard/static"

# Only this origin, no inline scripts or styles, no framing; uPlot styles its elements through
# the CSSOM (element.style), which style-src does not restrict.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

blueprint = Blueprint("dashboard", __name__, static_folder="static", static_url_path=STATIC_URL)


@blueprint.get("/")
def index() -> Response:
    """The dashboard page."""
    return send_from_directory(blueprint.static_folder or "", "index.html", max_age=0)


@blueprint.after_app_request
def _headers(response: Response) -> Response:
    path = request.path
    if path == "/" or path.startswith(STATIC_URL + "/"):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if current_app.debug:
            response.headers["Cache-Control"] = "no-store"
    return response
