"""WSGI entry point, loaded once in each serving process: ``api.wsgi:app`` (``api.server`` runs it).

``automl serve`` migrates once before starting the server and sets AUTOML_SKIP_MIGRATE so that its
worker processes do not race each other to migrate. With ``AUTOML_PROBE_PORT`` set, each process also
answers /healthz and /readyz on that port, from a thread of its own, so probes answer while every
request thread is busy (``api.probes``).
"""

from __future__ import annotations

import os

from api.app import create_app

app = create_app(migrate=os.environ.get("AUTOML_SKIP_MIGRATE") != "1")

if os.environ.get("AUTOML_PROBE_PORT"):
    from api.probes import start_probe_listener
    from api.server import ServerOptions

    # On the API's own address (api.server puts it in AUTOML_BIND before the workers start).
    start_probe_listener(app.extensions["automl"], ServerOptions.from_env().host, int(os.environ["AUTOML_PROBE_PORT"]))
