"""The throughput floor for ``benchmarks/serving.py``: the hand-written app a team would write instead.

Flask + gunicorn (sync workers) + ``model.predict_on_batch`` serving a plain Keras MLP on the
same columns as the service's model (2 hidden layers, 128 and 64 units, standardisation as a
``Normalization`` layer): no key check, no metrics, no input validation beyond what NumPy does.

    .venv/bin/gunicorn -w 2 -b 127.0.0.1:PORT 'benchmarks.floor_app:create_app()'

``FLOOR_COLUMNS`` (comma-separated) names the input columns of the JSON instances.

``within_service()`` mounts the same app at ``/floor`` inside the service's own WSGI app, to be run
with the service's gunicorn settings (``-c python:api.gunicorn_conf``, ``AUTOML_DATA_DIR`` and
``AUTOML_SKIP_MIGRATE=1`` set): the floor's route then shares the service's process, threads and
server, so a gap between it and the service's route is the service's own request handling.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Any

import numpy as np
from flask import Flask, request


def create_app() -> Flask:
    import keras

    columns = os.environ["FLOOR_COLUMNS"].split(",")
    model = keras.Sequential([
        keras.Input((len(columns),)),
        keras.layers.Normalization(mean=0.0, variance=1.0),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.predict_on_batch(np.zeros((1, len(columns)), dtype="float32"))
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> Any:
        rows = request.get_json()["instances"]
        x = np.array([[row[c] for c in columns] for row in rows], dtype="float32")
        return {"predictions": model.predict_on_batch(x).ravel().tolist()}

    return app


def within_service() -> Any:
    """The service's app with this app mounted at ``/floor`` (``/floor/predict``), in one process."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from api.wsgi import app as service

    return DispatcherMiddleware(service, {"/floor": create_app()})
