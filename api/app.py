"""The Flask application factory. Nothing happens at import time."""

from __future__ import annotations

import io

from flask import Flask, request, send_from_directory
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from api.auth import authenticate
from api.dashboard import blueprint as dashboard
from api.errors import AutomlApi, register_error_handlers
from api.json import OrjsonProvider
from api.keys import KeyRing, RateLimits, Slots
from api.metrics import init_app as init_metrics
from api.probes import readiness
from api.resources import BLUEPRINTS
from api.services import Services, services
from automl.housekeeping import sweep_stale_files
from automl.observability import StoreCollector, configure_logging
from automl.serving.cache import ModelCache, predictor_loader
from automl.serving.drift import DriftMonitor
from automl.serving.images import MAX_IMAGES
from automl.serving.warmup import Warmup
from automl.settings import Settings
from automl.store import Store
from automl.usecases.models import ModelResolver
from tasks.celery_app import make_celery, queue_depth

DOCS_STATIC = "/api/v1/docs/static/"


def create_app(settings: Settings | None = None, migrate: bool = True) -> Flask:
    settings = settings or Settings()
    settings.ensure_dirs()
    sweep_stale_files(settings)  # what a crashed upload or save left behind
    configure_logging(settings.log_level, settings.log_format)

    app = Flask("automl")
    app.json = OrjsonProvider(app)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_FORM_PARTS=MAX_IMAGES + 10,  # image predictions send one part per file
        API_TITLE="Keras AutoML service",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=DOCS_STATIC,
        API_SPEC_OPTIONS={
            "info": {"description": "Upload tabular data or images, run Keras Tuner searches, serve the best "
                                    "model. Every call needs an API key: `Authorization: Bearer <key>`."},
            "security": [{"apiKey": []}],
        },
    )
    store = Store(settings.sqlalchemy_url)
    if migrate:
        store.migrate()
    models = ModelCache(settings.model_cache_size, predictor_loader(settings.serving_threads, settings.serving_xla))
    warmup = Warmup(store, models, settings.deployed_refresh_s, int(settings.deployed_memory_mb * 2**20))
    celery = make_celery(settings)
    limits = RateLimits(settings.rate_limit_storage, {"upload": settings.rate_limit_upload,
                                                      "jobs": settings.rate_limit_jobs,
                                                      "predict": settings.rate_limit_predict},
                        fail_open=settings.rate_limit_fail_open)
    app.extensions["automl"] = Services(settings=settings, store=store, celery=celery, models=models, warmup=warmup,
                                        keys=KeyRing(store, settings.key_cache_s), limits=limits,
                                        slots=Slots({"stream": settings.key_max_streams,
                                                     "download": settings.key_max_downloads,
                                                     "batch": settings.key_max_batch_scoring}),
                                        resolver=ModelResolver(store, models),
                                        drift=DriftMonitor(store, settings.drift_flush_s,
                                                           settings.drift_retention_days))

    api = AutomlApi(app)
    api.spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer",
                                                   "description": "An API key: `automl keys create --team NAME`."})
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    register_error_handlers(app)
    _register_docs_assets(app)

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        """Readiness: deployed models loaded and warmed in this process, database and broker reachable.

        Counts only: which models failed to load, and why, is in the log (probes are unauthenticated)."""
        return readiness(services())

    init_metrics(app, StoreCollector(store, lambda: queue_depth(celery), settings.job_lease_s))
    app.before_request(_json_body_limit)
    app.before_request(authenticate)  # after the request id is set, so refusals are logged with it
    app.register_blueprint(dashboard)  # "/": the web dashboard, a client of the API above
    warmup.start()
    return app


def _json_body_limit() -> None:
    """A JSON body gets ``AUTOML_MAX_JSON_BYTES``, not the file uploads' limit: refused at once when its
    Content-Length says so; sent in chunks without one, it is read here up to the limit (and refused
    past it), then handed on as a body of known length."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup (see api.metrics)
    if req.mimetype != "application/json":
        return
    limit = services().settings.max_json_bytes
    req.max_content_length = limit
    if req.content_length is not None:
        if req.content_length > limit:
            raise RequestEntityTooLarge()
        return
    environ = req.environ
    if not environ.get("wsgi.input_terminated"):
        return  # no length and no end marker: Werkzeug reads nothing of such a body
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # Werkzeug ignores a Content-Length beside "chunked"


def _register_docs_assets(app: Flask) -> None:
    """Swagger UI's files come from the swagger-ui-bundle package: no CDN at run time."""
    from swagger_ui_bundle import swagger_ui_path

    @app.get(DOCS_STATIC + "<path:filename>")
    def swagger_assets(filename: str) -> ResponseReturnValue:
        return send_from_directory(swagger_ui_path, filename)
