"""``/v1/models``: TensorFlow Serving's REST API, so clients written for it work unchanged.

``{name}`` is a model id or an alias. Predictions are the model's outputs, as TensorFlow
Serving would return them: class probabilities for classifiers, values for regression.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import rate_limited, requires_role, scope
from api.metrics import count_predictions
from api.resources.tfserving.schemas import TFServingPredictionsSchema, TFServingPredictSchema, TFServingStatusSchema
from api.services import services
from automl.access import Role
from automl.serving.adapters import json_instances
from automl.store import catalogue
from automl.store.records import ModelState

blp = Blueprint("tfserving", __name__, url_prefix="/v1/models",
                description="TensorFlow Serving-compatible REST endpoints (model id or alias).")

_STATES = {ModelState.ready.value: "AVAILABLE", ModelState.training.value: "LOADING", ModelState.failed.value: "END"}


@blp.route("/<string:name>")
class Status(MethodView):
    @requires_role(Role.predict)
    @blp.response(200, TFServingStatusSchema)
    def get(self, name: str) -> Any:
        """Model status in TensorFlow Serving's form (one version, "1")."""
        with services().store.session() as session:
            record = catalogue.resolve_model(session, name, scope())
        failed = record.state == ModelState.failed.value
        return {"model_version_status": [{
            "version": "1",
            "state": _STATES.get(record.state, "END"),
            "status": {"error_code": "UNKNOWN" if failed else "OK", "error_message": record.error or ""},
        }]}


@blp.route("/<string:name>:predict")
class Predict(MethodView):
    @requires_role(Role.predict)
    @rate_limited("predict")
    @blp.arguments(TFServingPredictSchema)
    @blp.response(200, TFServingPredictionsSchema)
    def post(self, body: dict[str, Any], name: str) -> Any:
        """``{"instances": [...]}`` or ``{"inputs": ...}`` → ``{"predictions": [...]}``."""
        predictor = services().resolver.predictor(name, scope())
        batch = json_instances(predictor, body["instances"] if "instances" in body else body["inputs"])
        if predictor.task == "regression":
            values, _ = predictor.predict(batch)
        else:
            values = predictor.probabilities(batch).mean.tolist()
        count_predictions("tfserving", len(values))
        return {"predictions": values}
