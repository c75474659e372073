"""The HTTP layer: Flask app factory, flask-smorest blueprints, marshmallow schemas.

Handlers are thin: validate, call ``automl`` (storage, jobs, serving) or queue a task by
name, shape the answer. TensorFlow is reached only through ``automl.serving``, lazily.
"""

from api.app import create_app

__all__ = ["create_app"]
