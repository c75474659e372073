from marshmallow import Schema, fields, validate

from api.resources.common import EpochsField

MAX_INSTANCES = 100_000


class ModelSchema(Schema):
    id = fields.String()
    state = fields.String(metadata={"enum": ["training", "ready", "failed"]})
    job_id = fields.String()
    dataset_id = fields.String()
    task = fields.String()
    target = fields.String()
    classes = fields.List(fields.Raw(), allow_none=True)
    input_schema = fields.List(fields.Dict(), metadata={"description": "Columns a prediction request sends."})
    hyperparameters = fields.Dict()
    validation_metrics = fields.Dict()
    test_metrics = fields.Dict(metadata={"description": "On the held-out test split the search never saw."})
    split_sizes = fields.Dict()
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()


class ModelHistorySchema(Schema):
    model_id = fields.String()
    epochs = EpochsField()


class PredictRequestSchema(Schema):
    instances = fields.List(
        fields.Raw(allow_none=True),
        required=True,
        validate=validate.Length(min=1, max=MAX_INSTANCES),
        metadata={"description": 'Rows as objects of raw values: [{"column": value, ...}]; null = missing.'},
    )


class PredictResponseSchema(Schema):
    predictions = fields.List(fields.Raw())


class ProbaResponseSchema(Schema):
    classes = fields.List(fields.Raw())
    probabilities = fields.List(fields.List(fields.Float()))
