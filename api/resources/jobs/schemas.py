from marshmallow import Schema, fields, validate

from api.resources.common import EpochsField

TASKS = ["auto", "binary", "multiclass", "regression"]
TUNERS = ["bayesian", "random", "hyperband"]
STATES = ["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreateSchema(Schema):
    dataset_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    target = fields.String(required=True, validate=validate.Length(min=1, max=255),
                           metadata={"description": "The column to predict."})
    task = fields.String(load_default="auto", validate=validate.OneOf(TASKS))
    tuner = fields.String(load_default="bayesian", validate=validate.OneOf(TUNERS))
    objective = fields.String(load_default=None, validate=validate.Length(max=64),
                              metadata={"description": "e.g. val_loss, val_accuracy, val_auc, val_mae, val_rmse"})
    max_trials = fields.Integer(load_default=None, validate=validate.Range(min=1))
    max_epochs = fields.Integer(load_default=None, validate=validate.Range(min=1))
    patience = fields.Integer(load_default=5, validate=validate.Range(min=1, max=1000),
                              metadata={"description": "Early-stopping patience in epochs."})
    seed = fields.Integer(load_default=None, validate=validate.Range(min=0, max=2**31 - 1))


class JobSchema(Schema):
    id = fields.String()
    dataset_id = fields.String()
    target = fields.String()
    task = fields.String()
    tuner = fields.String()
    objective = fields.String()
    objective_direction = fields.String(metadata={"enum": ["min", "max"]})
    state = fields.String(metadata={"enum": STATES})
    trials_done = fields.Integer()
    max_trials = fields.Integer()
    max_epochs = fields.Integer()
    patience = fields.Integer()
    seed = fields.Integer()
    classes = fields.List(fields.Raw(), allow_none=True)
    best_score = fields.Float(allow_none=True)
    best_trial_id = fields.String(allow_none=True)
    model_id = fields.String(allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "Why the job failed, when it did."})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class TrialSchema(Schema):
    trial_id = fields.String()
    number = fields.Integer()
    state = fields.String(metadata={"enum": ["running", "completed", "failed"]})
    hyperparameters = fields.Dict()
    score = fields.Float(allow_none=True)
    best_epoch = fields.Integer(allow_none=True)
    epochs_done = fields.Integer()
    message = fields.String(allow_none=True)
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class LeaderboardSchema(Schema):
    job_id = fields.String()
    objective = fields.String()
    direction = fields.String()
    trials = fields.List(fields.Nested(TrialSchema), metadata={"description": "Best score first."})


class TrialHistorySchema(Schema):
    job_id = fields.String()
    trial_id = fields.String()
    state = fields.String()
    epochs = EpochsField()
