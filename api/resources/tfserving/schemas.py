from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.resources.common import JsonArray
from api.resources.models.schemas import MAX_INSTANCES


class TFServingPredictSchema(Schema):
    signature_name = fields.String(load_default="serving_default",
                                   validate=validate.OneOf(["serving_default"]))
    instances = JsonArray({"type": "object", "additionalProperties": True},
                          validate=validate.Length(min=1, max=MAX_INSTANCES),
                          metadata={"description": "Row format: one object of column -> value per row."})
    inputs = fields.Raw(metadata={"description": "Columnar format: {column: [values, ...]}, or a list of rows."})

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
