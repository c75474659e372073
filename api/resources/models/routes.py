"""``/api/v1/models``: inspect trained models and predict with them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
from flask import Response, request, send_file
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError
from werkzeug.datastructures import FileStorage

from api.auth import holds_slot, rate_limited, requires_role, scope, with_slot
from api.metrics import count_predictions
from api.plots import importance_bars, learning_curves
from api.resources.common import PNG_ANSWER, PlotArgs
from api.resources.models.schemas import (
    BatchPredictFormSchema,
    DownloadArgs,
    DriftArgs,
    DriftSchema,
    ImportanceSchema,
    ModelHistorySchema,
    ModelListArgs,
    ModelSchema,
    PredictRequestSchema,
    PredictResponseSchema,
    ProbaResponseSchema,
    ProfileSchema,
)
from api.services import services
from automl.access import Role
from automl.errors import InvalidInstances, InvalidRequest, NotFound, NotReady
from automl.serving.adapters import Batch, image_files, json_instances
from automl.serving.batch import OUTPUT_FORMATS, score_file
from automl.serving.predictor import Predictor
from automl.store import catalogue
from automl.store.records import ModelRecord, ModelState
from automl.usecases import predictions
from automl.usecases.deletion import delete_model
from automl.usecases.models import deploy, drift_report, training_profile, undeploy

blp = Blueprint("models", __name__, url_prefix="/api/v1/models", description="Trained models and predictions.")


def predictor_for(ref: str) -> Predictor:
    """The loaded model for a model id or an alias the caller may see."""
    return services().resolver.predictor(ref, scope())


@blp.route("")
class Models(MethodView):
    @blp.arguments(ModelListArgs, location="query")
    @blp.response(200, ModelSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List models, newest first (``?deployed=true``: the deployed ones)."""
        with services().store.session() as session:
            return catalogue.list_models(session, args["limit"], args["offset"], args["deployed"], scope())


@blp.route("/<string:model_id>")
class Model(MethodView):
    @requires_role(Role.predict)
    @blp.response(200, ModelSchema)
    def get(self, model_id: str) -> Any:
        """Task, target, classes, input schema, hyperparameters, validation and test metrics
        (``model_id`` may also be an alias)."""
        with services().store.session() as session:
            return catalogue.resolve_model(session, model_id, scope())

    @blp.response(204)
    def delete(self, model_id: str) -> None:
        """Delete the model: its record, its files and its drift counts (409 while it is deployed, aliased or
        training, naming what to do first). ``model_id`` must be the id, not an alias."""
        svc = services()
        delete_model(svc.store, svc.settings, svc.models, model_id, scope())


@blp.route("/<string:model_id>/deploy")
class Deploy(MethodView):
    @blp.response(200, ModelSchema)
    def post(self, model_id: str) -> Any:
        """Mark the model deployed: every serving process loads and warms it when it starts (readiness,
        ``/readyz``, waits for that) and keeps it loaded. This process loads it before answering; running
        ones pick it up within ``AUTOML_DEPLOYED_REFRESH_S``."""
        svc = services()
        return deploy(svc.store, svc.settings, svc.warmup, model_id, scope())

    @blp.response(200, ModelSchema)
    def delete(self, model_id: str) -> Any:
        """Undeploy: serving processes stop loading it at start; it stays servable (loaded on demand)."""
        svc = services()
        return undeploy(svc.store, svc.warmup, model_id, scope())


@blp.route("/<string:model_id>/history")
class ModelHistory(MethodView):
    @blp.response(200, ModelHistorySchema)
    def get(self, model_id: str) -> Any:
        """Per-epoch metrics of the final model's training."""
        with services().store.session() as session:
            record = catalogue.get_model(session, model_id, scope())
        return {"model_id": record.id, "epochs": record.history}


@blp.route("/<string:model_id>/history.png")
class ModelHistoryPlot(MethodView):
    @blp.arguments(PlotArgs, location="query")
    @blp.response(200, **PNG_ANSWER)
    def get(self, args: dict[str, Any], model_id: str) -> Any:
        """The final model's learning curves as a PNG."""
        with services().store.session() as session:
            record = catalogue.get_model(session, model_id, scope())
        png = learning_curves(record.history or [], f"model {record.id} ({record.task}, target {record.target})",
                              args["width"], args["height"])
        return Response(png, mimetype="image/png")


def _model_keeping(model_id: str, entry: str, what: str) -> ModelRecord:
    """The model (id or alias), when its card has ``entry``, something its job's end measured or saved for
    table models: 409 while the model is still training, 404 for a model that does not keep it."""
    with services().store.session() as session:
        record = catalogue.resolve_model(session, model_id, scope())
    if getattr(record, entry) is None:
        if record.state != ModelState.ready.value:
            raise NotReady(f"Model '{record.id}' is {record.state}; its {what} is there when its job finishes.")
        raise NotFound(f"Model '{record.id}' has no {what}: it is kept for table models (this one is a {record.kind} "
                       "model), by models trained since it was added.")
    return record


@blp.route("/<string:model_id>/importance")
class Importance(MethodView):
    @blp.response(200, ImportanceSchema)
    def get(self, model_id: str) -> Any:
        """Which input columns the model relies on: permutation importance on the held-out test rows (the
        drop in accuracy or R² when a column's values are shuffled, mean and spread over the repeats),
        most important first."""
        record = _model_keeping(model_id, "importance", "feature importance")
        return {"model_id": record.id, **(record.importance or {})}


@blp.route("/<string:model_id>/importance.png")
class ImportancePlot(MethodView):
    @blp.arguments(PlotArgs, location="query")
    @blp.response(200, description="Permutation importance as bars, most important column on top (at most 30).",
                  content_type="image/png")
    def get(self, args: dict[str, Any], model_id: str) -> Any:
        """The permutation importance as a bar chart (PNG)."""
        record = _model_keeping(model_id, "importance", "feature importance")
        png = importance_bars(record.importance or {},
                              f"model {record.id}: which columns matter (target {record.target})",
                              args["width"], args["height"])
        return Response(png, mimetype="image/png")


@blp.route("/<string:model_id>/profile")
class Profile(MethodView):
    @blp.response(200, ProfileSchema)
    def get(self, model_id: str) -> Any:
        """What the model saw in training, per input column (table models): the reference for input
        warnings and drift."""
        record = _model_keeping(model_id, "profile", "training profile")
        return training_profile(record)


@blp.route("/<string:model_id>/drift")
class Drift(MethodView):
    @blp.arguments(DriftArgs, location="query")
    @blp.response(200, DriftSchema)
    def get(self, args: dict[str, Any], model_id: str) -> Any:
        """Do recent prediction inputs still look like the training rows? Per input column: the population
        stability index of the inputs served in the last ``hours`` against the training profile (above
        0.25: drifted), the share of numbers beyond the training range and of categories never seen, and
        the missing share against the training's."""
        svc = services()
        record = _model_keeping(model_id, "profile", "training profile to measure drift against")
        return drift_report(svc.store, svc.drift, record, args["hours"])


_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": PredictRequestSchema},
        "multipart/form-data": {"schema": BatchPredictFormSchema},
    },
}
_PREDICT_REQUEST = PredictRequestSchema()  # built once: a schema's construction cost ~0.2 ms per request
_BATCH_ANSWER = ("A multipart CSV/Parquet upload is answered as CSV (text/csv, the default) or as this JSON "
                 "document (Accept: application/json); image files always as this JSON document.")


def _json_body() -> dict[str, Any]:
    """The JSON request, validated (the route also takes multipart uploads, so webargs cannot parse it)."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup (see api.metrics)
    if not req.is_json:
        abort(415, message=f"Unsupported content type '{req.mimetype or 'none'}'. Send JSON "
                           '{"instances": [...]}, or a CSV/Parquet file as multipart/form-data field \'file\'.')
    payload = req.get_json(silent=True)
    if payload is None:
        try:
            orjson.loads(req.get_data())
            detail = "it is null"
        except orjson.JSONDecodeError as exc:
            detail = str(exc)[:200]
        raise InvalidRequest(f"The request body is not valid JSON ({detail}). NaN and Infinity are not JSON: send "
                             "null for a missing value.", {"json": ["invalid JSON"]})
    try:
        body: dict[str, Any] = _PREDICT_REQUEST.load(payload)
    except ValidationError as exc:
        abort(422, messages={"json": exc.messages})
    return body


def _image_files(predictor: Predictor) -> tuple[Batch, int | None]:
    """A multipart request's image files, in the order sent (any field names), and its ``mc_samples``."""
    uploads = [f for _, f in request.files.items(multi=True)]
    names = [f.filename or f"file {i + 1}" for i, f in enumerate(uploads)]
    raw = request.form.get("mc_samples")
    try:
        mc_samples = _PREDICT_REQUEST.fields["mc_samples"].deserialize(raw) if raw not in (None, "") else None
    except ValidationError as exc:
        abort(422, messages={"form": {"mc_samples": exc.messages}})
    return image_files(predictor, [(name, f.read()) for name, f in zip(names, uploads, strict=True)]), mc_samples


def _predict(model_id: str, proba: bool) -> Any:
    """One request, one path: the request checked, the model resolved, the request's adapter (JSON
    instances, image files; a CSV/Parquet upload is scored as a whole file), the answer."""
    if request.mimetype == "multipart/form-data":
        # Image files need the model to know they are images; without any file part the batch path words the 422.
        predictor = predictor_for(model_id) if request.files else None
        if predictor is None or predictor.kind != "image":
            return with_slot("batch", lambda: _score_upload(model_id, predictor, proba))
        if proba:
            predictor.require_classifier()
        batch, mc_samples = _image_files(predictor)
        warnings = explain = False
    else:
        body = _json_body()
        predictor = predictor_for(model_id)
        if proba:
            predictor.require_classifier()
        batch, mc_samples = json_instances(predictor, body["instances"]), body["mc_samples"]
        warnings, explain = body["warnings"], body["explain"]
    document = predictions.answer(predictor, batch, proba=proba, mc_samples=mc_samples, warnings=warnings,
                                  explain=explain)
    count_predictions("predict_proba" if proba else "predict", batch.rows)
    services().drift.observe(predictor, batch)
    return document


def _score_upload(model_id: str, predictor: Predictor | None, proba: bool) -> Response:
    """Batch scoring of a multipart CSV/Parquet upload; the answer streams from a temporary file."""
    svc = services()
    form = {**request.form.to_dict(), **request.files.to_dict()}
    try:
        fields = BatchPredictFormSchema().load(form)
    except ValidationError as exc:
        abort(422, messages={"form": exc.messages})
    accept = request.accept_mimetypes
    output = accept.best_match(list(OUTPUT_FORMATS.values())) if accept.provided else "text/csv"
    if output is None:
        abort(406, message=f"Batch predictions are CSV or JSON; the Accept header '{accept}' allows neither. "
                           "Ask for text/csv or application/json.")
    upload = fields["file"]
    if not isinstance(upload, FileStorage):
        raise InvalidInstances("Send the CSV or Parquet file itself in the multipart field 'file' (a file part, "
                               "not a text field).", {"file": ["not a file"]})
    passthrough = [c.strip() for c in fields.get("passthrough", "").split(",") if c.strip()]
    explain = fields["explain"]
    predictor = predictor or predictor_for(model_id)
    staging = svc.settings.tmp_dir / f"score-{uuid.uuid4().hex}"
    try:
        upload.save(staging)
        scored = score_file(predictor, staging, upload.filename or "upload.csv", proba=proba,
                            output="json" if output == "application/json" else "csv",
                            passthrough=passthrough, tmp_dir=svc.settings.tmp_dir, explain=explain,
                            observe=lambda batch: svc.drift.observe(predictor, batch),
                            max_rows=svc.settings.batch_max_rows, max_s=svc.settings.batch_max_s)
    finally:
        staging.unlink(missing_ok=True)

    def stream() -> Any:
        with scored.handle:
            while block := scored.handle.read(1 << 20):
                yield block

    count_predictions("predict_proba" if proba else "predict", scored.rows)
    response = Response(stream(), mimetype=scored.media_type)
    response.headers["Content-Length"] = str(scored.size)
    response.headers["X-Rows-Scored"] = str(scored.rows)
    response.call_on_close(scored.handle.close)
    return response


@blp.route("/<string:model_id>/predict")
class Predict(MethodView):
    @requires_role(Role.predict)
    @rate_limited("predict")
    @blp.doc(requestBody=_PREDICT_BODY)
    @blp.response(200, PredictResponseSchema, description=_BATCH_ANSWER)
    def post(self, model_id: str) -> Any:
        """Predictions in the original label space (classes as in the data; numbers for regression).

        JSON ``instances``, or a CSV/Parquet file (multipart field ``file``) of any size for batch
        scoring. With ``mc_samples`` (JSON), Monte Carlo dropout: the mean prediction and its
        standard deviation."""
        return _predict(model_id, proba=False)


@blp.route("/<string:model_id>/predict_proba")
class PredictProba(MethodView):
    @requires_role(Role.predict)
    @rate_limited("predict")
    @blp.doc(requestBody=_PREDICT_BODY)
    @blp.response(200, ProbaResponseSchema, description=_BATCH_ANSWER)
    def post(self, model_id: str) -> Any:
        """Class probabilities, one row per instance, each row summing to 1 (classifiers only).

        JSON ``instances``, or a CSV/Parquet file (multipart field ``file``) for batch scoring.
        Multilabel: one independent probability per label column. With ``mc_samples`` (JSON), the
        mean over Monte Carlo dropout passes and its standard deviation."""
        return _predict(model_id, proba=True)


@blp.route("/<string:model_id>/download")
class Download(MethodView):
    @holds_slot("download")
    @blp.arguments(DownloadArgs, location="query")
    @blp.response(200, description="The model file (keras) or a zip of the SavedModel as version 1/ (savedmodel).",
                  content_type="application/octet-stream")
    def get(self, args: dict[str, str], model_id: str) -> Any:
        """Export the model with its preprocessing inside: ``.keras`` (load with Keras, ``safe_mode=True``)
        or a TensorFlow SavedModel for TensorFlow Serving."""
        from automl.registry import MODEL_FILE, saved_model_archive

        with services().store.session() as session:
            record = catalogue.resolve_model(session, model_id, scope())
        if record.state != ModelState.ready.value or not record.path:
            raise NotReady(f"Model '{record.id}' is {record.state}; it can be downloaded once it is ready.")
        folder = Path(record.path)
        if args["format"] == "keras":
            return send_file(folder / MODEL_FILE, as_attachment=True, download_name=f"model-{record.id}.keras",
                             mimetype="application/octet-stream")
        return send_file(saved_model_archive(folder), as_attachment=True,
                         download_name=f"model-{record.id}-savedmodel.zip", mimetype="application/zip")
