"""WSGI entry point for gunicorn: ``gunicorn api.wsgi:app``.

``automl serve`` migrates once before starting gunicorn and sets AUTOML_SKIP_MIGRATE so
that its worker processes do not race each other to migrate.
"""

import os

from api.app import create_app

app = create_app(migrate=os.environ.get("AUTOML_SKIP_MIGRATE") != "1")
