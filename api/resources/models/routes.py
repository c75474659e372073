"""``/api/v1/models``: inspect trained models and predict with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import send_file
from flask.views import MethodView
from flask_smorest import Blueprint

from api.resources.common import PageArgs
from api.resources.models.schemas import (
    DownloadArgs,
    ModelHistorySchema,
    ModelSchema,
    PredictRequestSchema,
    PredictResponseSchema,
    ProbaResponseSchema,
)
from api.services import services
from automl.errors import NotReady
from automl.serving.predictor import Predictor
from automl.store import repository
from automl.store.records import ModelState

blp = Blueprint("models", __name__, url_prefix="/api/v1/models", description="Trained models and predictions.")


def predictor_for(ref: str) -> Predictor:
    """The loaded model for a model id or an alias (aliases are looked up on every call: they move)."""
    svc = services()
    cached = svc.models.peek(ref)  # ready models never change: skip the database when loaded
    if cached is not None:
        return cached
    with svc.store.session() as session:
        record = repository.resolve_model(session, ref)
    if record.state != ModelState.ready.value or not record.path:
        detail = f" ({record.error})" if record.error else ""
        raise NotReady(
            f"Model '{record.id}' is {record.state}{detail}; it can predict once its job "
            f"'{record.job_id}' has succeeded."
        )
    return svc.models.get(record.id, Path(record.path))


@blp.route("")
class Models(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ModelSchema(many=True))
    def get(self, page: dict[str, int]) -> Any:
        """List models, newest first."""
        with services().store.session() as session:
            return repository.list_models(session, page["limit"], page["offset"])


@blp.route("/<string:model_id>")
class Model(MethodView):
    @blp.response(200, ModelSchema)
    def get(self, model_id: str) -> Any:
        """Task, target, classes, input schema, hyperparameters, validation and test metrics
        (``model_id`` may also be an alias)."""
        with services().store.session() as session:
            return repository.resolve_model(session, model_id)


@blp.route("/<string:model_id>/history")
class ModelHistory(MethodView):
    @blp.response(200, ModelHistorySchema)
    def get(self, model_id: str) -> Any:
        """Per-epoch metrics of the final model's training."""
        with services().store.session() as session:
            record = repository.get_model(session, model_id)
        return {"model_id": record.id, "epochs": record.history}


@blp.route("/<string:model_id>/predict")
class Predict(MethodView):
    @blp.arguments(PredictRequestSchema)
    @blp.response(200, PredictResponseSchema)
    def post(self, body: dict[str, Any], model_id: str) -> Any:
        """Predictions in the original label space (classes as in the data; numbers for regression).

        With ``mc_samples``, Monte Carlo dropout: the mean prediction and its standard deviation."""
        predictions, std = predictor_for(model_id).predict(body["instances"], body["mc_samples"])
        if std is None:
            return {"predictions": predictions}
        return {"predictions": predictions, "std": std, "mc_samples": body["mc_samples"]}


@blp.route("/<string:model_id>/predict_proba")
class PredictProba(MethodView):
    @blp.arguments(PredictRequestSchema)
    @blp.response(200, ProbaResponseSchema)
    def post(self, body: dict[str, Any], model_id: str) -> Any:
        """Class probabilities, one row per instance, each row summing to 1 (classifiers only).

        Multilabel: one independent probability per label column. With ``mc_samples``, the mean
        over Monte Carlo dropout passes and its standard deviation."""
        predictor = predictor_for(model_id)
        out = predictor.probabilities(body["instances"], body["mc_samples"])
        response: dict[str, Any] = {"classes": predictor.proba_columns, "probabilities": out.mean.tolist()}
        if predictor.task == "multilabel":
            response["positive_classes"] = [pair[1] for pair in predictor.classes or []]
        if out.std is not None:
            response.update(std=out.std.tolist(), mc_samples=body["mc_samples"])
        return response


@blp.route("/<string:model_id>/download")
class Download(MethodView):
    @blp.arguments(DownloadArgs, location="query")
    @blp.response(200, description="The model file (keras) or a zip of the SavedModel as version 1/ (savedmodel).",
                  content_type="application/octet-stream")
    def get(self, args: dict[str, str], model_id: str) -> Any:
        """Export the model with its preprocessing inside: ``.keras`` (load with Keras, ``safe_mode=True``)
        or a TensorFlow SavedModel for TensorFlow Serving."""
        from automl.registry import MODEL_FILE, saved_model_archive

        with services().store.session() as session:
            record = repository.resolve_model(session, model_id)
        if record.state != ModelState.ready.value or not record.path:
            raise NotReady(f"Model '{record.id}' is {record.state}; it can be downloaded once it is ready.")
        folder = Path(record.path)
        if args["format"] == "keras":
            return send_file(folder / MODEL_FILE, as_attachment=True, download_name=f"model-{record.id}.keras",
                             mimetype="application/octet-stream")
        return send_file(saved_model_archive(folder), as_attachment=True,
                         download_name=f"model-{record.id}-savedmodel.zip", mimetype="application/zip")
