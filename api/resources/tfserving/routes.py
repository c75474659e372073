"""``/v1/models``: TensorFlow Serving's REST API, so clients written for it work unchanged.

``{name}`` is a model id or an alias. Predictions are the model's outputs, as TensorFlow
Serving would return them: class probabilities for classifiers, values for regression.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import rate_limited, scope
from api.metrics import count_predictions
from api.resources.models.schemas import MAX_INSTANCES
from api.resources.tfserving.schemas import TFServingPredictionsSchema, TFServingPredictSchema, TFServingStatusSchema
from api.services import services
from automl.errors import InvalidInstances
from automl.store import catalogue
from automl.store.records import ModelState

blp = Blueprint("tfserving", __name__, url_prefix="/v1/models",
                description="TensorFlow Serving-compatible REST endpoints (model id or alias).")

_STATES = {ModelState.ready.value: "AVAILABLE", ModelState.training.value: "LOADING", ModelState.failed.value: "END"}


def _rows(body: dict[str, Any]) -> list[Any]:
    if "instances" in body:
        return list(body["instances"])  # its length is checked by the schema
    inputs = body["inputs"]
    if isinstance(inputs, list) and inputs:
        _within_row_limit(len(inputs))
        return inputs
    if isinstance(inputs, dict) and inputs and all(isinstance(v, list) for v in inputs.values()):
        lengths = {len(v) for v in inputs.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise InvalidInstances("Every column in 'inputs' must list the same number (> 0) of values.",
                                   {"inputs": [f"column lengths {sorted(lengths)}"]})
        (count,) = lengths
        _within_row_limit(count)
        return [{column: values[i] for column, values in inputs.items()} for i in range(count)]
    raise InvalidInstances("'inputs' must be {column: [values, ...]} or a non-empty list of rows.",
                           {"inputs": ["unrecognised shape"]})


def _within_row_limit(count: int) -> None:
    """``inputs`` obeys the row limit ``instances`` has."""
    if count > MAX_INSTANCES:
        raise InvalidInstances(f"'inputs' holds {count} rows; one request may predict at most {MAX_INSTANCES}. "
                               "Split the rows over several requests, or score a file with batch scoring.",
                               {"inputs": [f"{count} rows, more than {MAX_INSTANCES}"]})


@blp.route("/<string:name>")
class Status(MethodView):
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
    @rate_limited("predict")
    @blp.arguments(TFServingPredictSchema)
    @blp.response(200, TFServingPredictionsSchema)
    def post(self, body: dict[str, Any], name: str) -> Any:
        """``{"instances": [...]}`` or ``{"inputs": ...}`` → ``{"predictions": [...]}``."""
        predictor = services().resolver.predictor(name, scope())
        rows = _rows(body)
        if predictor.task == "regression":
            values, _ = predictor.predict(rows)
        else:
            values = predictor.probabilities(rows).mean.tolist()
        count_predictions(predictor.model_id, "tfserving", len(values))
        return {"predictions": values}
