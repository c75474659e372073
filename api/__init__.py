"""The HTTP layer: Flask app factory, flask-smorest blueprints, marshmallow schemas.

Handlers are thin: validate, call ``automl`` (storage, jobs, serving) or queue a task by
name, shape the answer. TensorFlow is reached only through ``automl.serving``, lazily.
"""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: ``python -m api.server`` imports this package in the server's main process, which must not
    # import prometheus_client before it has set PROMETHEUS_MULTIPROC_DIR for the workers.
    if name == "create_app":
        from api.app import create_app

        return create_app
    raise AttributeError(name)
