from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.resources.common import JsonArray
from api.resources.models.schemas import MAX_INSTANCES


class TFServingInputs(fields.Field):
    """TensorFlow Serving's ``inputs``: columns ``{column: [values, ...]}`` or a list of rows, loaded as
    rows; the same row limit as ``instances``, checked before any row is built."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list) and value:
            _within_row_limit(len(value))
            return value
        if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
            lengths = {len(v) for v in value.values()}
            if len(lengths) != 1 or 0 in lengths:
                raise ValidationError(f"Every column in 'inputs' must list the same number (> 0) of values; "
                                      f"got column lengths {sorted(lengths)[:10]}.")
            (count,) = lengths
            _within_row_limit(count)
            return [{column: values[i] for column, values in value.items()} for i in range(count)]
        raise ValidationError("'inputs' must be {column: [values, ...]} or a non-empty list of rows.")


def _within_row_limit(count: int) -> None:
    if count > MAX_INSTANCES:
        raise ValidationError(f"'inputs' holds {count} rows; one request may predict at most {MAX_INSTANCES}. "
                              "Split the rows over several requests, or score a file with batch scoring.")


class TFServingPredictSchema(Schema):
    signature_name = fields.String(load_default="serving_default",
                                   validate=validate.OneOf(["serving_default"]))
    instances = JsonArray({"type": "object", "additionalProperties": True},
                          validate=validate.Length(min=1, max=MAX_INSTANCES),
                          metadata={"description": "Row format: one object of column -> value per row."})
    inputs = TFServingInputs(metadata={
        "description": "Columnar format: {column: [values, ...]}, or a list of rows.",
        "oneOf": [{"type": "object", "additionalProperties": {"type": "array"}}, {"type": "array"}]})

    @validates_schema
    def one_format(self, data: dict[str, Any], **_: Any) -> None:
        if ("instances" in data) == ("inputs" in data):
            raise ValidationError("Send exactly one of 'instances' (rows) or 'inputs' (columns).", "instances")


class TFServingPredictionsSchema(Schema):
    predictions = JsonArray({}, metadata={
        "description": "Per row: class probabilities (classifiers, in the model's class order), per-label "
                       "probabilities (multilabel) or the value (regression)."})


class VersionStatusSchema(Schema):
    version = fields.String()
    state = fields.String(metadata={"enum": ["LOADING", "AVAILABLE", "END"]})
    status = fields.Dict()


class TFServingStatusSchema(Schema):
    model_version_status = fields.List(fields.Nested(VersionStatusSchema))
