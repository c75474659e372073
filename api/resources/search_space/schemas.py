from marshmallow import Schema, fields, validate

TASKS = ["binary", "multiclass", "multilabel", "regression"]


class SearchSpaceArgs(Schema):
    task = fields.String(load_default=None, validate=validate.OneOf(TASKS),
                         metadata={"description": "Only the hyperparameters and objectives of this task."})
    kind = fields.String(load_default="tabular", validate=validate.OneOf(["tabular", "image"]),
                         metadata={"description": "The space for table datasets (MLP) or image datasets (CNN)."})


class HyperparameterSchema(Schema):
    name = fields.String()
    type = fields.String(metadata={"enum": ["int", "float", "choice", "boolean"]})
    default = fields.Raw()
    description = fields.String()
    min = fields.Float()
    max = fields.Float()
    step = fields.Float()
    sampling = fields.String(metadata={"enum": ["linear", "log"]})
    choices = fields.List(fields.Raw(), metadata={"description": "The values of a choice or boolean."})
    tasks = fields.List(fields.String())
    active_when = fields.Dict(metadata={"description": "Used only when these hyperparameters take these values."})
    searched_by_default = fields.List(fields.Raw(), metadata={
        "description": "The values searched when a job does not name this hyperparameter (others on request)."})


class SearchSpaceSchema(Schema):
    hyperparameters = fields.List(fields.Nested(HyperparameterSchema))
    tuners = fields.List(fields.String())
    objectives = fields.Dict(metadata={"description": "Per task: objective name -> direction (min or max)."})
    default_objectives = fields.Dict()
    narrowing = fields.String()
