from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from api.resources.common import EpochsField
from automl.search.options import OptionInfo, declared

TASKS = ["auto", "binary", "multiclass", "multilabel", "regression"]
TUNERS = ["bayesian", "random", "hyperband", "grid"]
STATES = ["queued", "running", "succeeded", "failed", "cancelled"]
STOP_REASONS = ["max_trials", "time_budget", "target_reached", "search_space_exhausted", "cancelled"]
TRIAL_STATES = ["running", "completed", "failed", "interrupted"]
IDEMPOTENCY_KEY = "Idempotency-Key"


class TargetField(fields.Field):
    """One column name, or a list of label columns (multilabel)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | list[str]:
        if isinstance(value, str) and 0 < len(value) <= 255:
            return value
        if (isinstance(value, list) and value and len(value) <= 100
                and all(isinstance(v, str) and 0 < len(v) <= 255 for v in value)):
            return value[0] if len(value) == 1 else value
        raise ValidationError("Give a column name, or a list of 2-100 column names for a multilabel task.")

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def _job_target(job: Any) -> Any:
    if isinstance(job, dict):
        return job.get("targets") or job.get("target")
    return job.targets or job.target


def _option_field(option: OptionInfo) -> fields.Field:
    """A request/answer field for one declared search option."""
    kind = {int: fields.Integer, float: fields.Float, bool: fields.Boolean}[option.type]
    extra: dict[str, Any] = {"allow_nan": False} if option.type is float else {}
    if option.minimum is not None:
        extra["validate"] = validate.Range(min=option.minimum)
    return kind(load_default=option.default, allow_none=option.nullable,
                metadata={"description": option.description}, **extra)


SearchOptionsSchema = Schema.from_dict({o.name: _option_field(o) for o in declared()}, name="SearchOptionsSchema")
"""The fields of ``automl.search.options.SearchOptions``, shared by the request and the answer."""


class JobCreateSchema(SearchOptionsSchema):  # type: ignore[valid-type,misc]
    dataset_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    target = TargetField(load_default=None, metadata={
        "description": "The column to predict, or a list of two-valued label columns (multilabel). Image "
                       "datasets with one label column (a folder per class) may leave it out.",
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    })
    task = fields.String(load_default="auto", validate=validate.OneOf(TASKS))
    tuner = fields.String(load_default="bayesian", validate=validate.OneOf(TUNERS))
    objective = fields.String(load_default=None, validate=validate.Length(max=64),
                              metadata={"description": "e.g. val_loss, val_accuracy, val_auc, val_mae, val_rmse"})
    max_trials = fields.Integer(load_default=None, validate=validate.Range(min=1))
    max_epochs = fields.Integer(load_default=None, validate=validate.Range(min=1))
    patience = fields.Integer(load_default=None, validate=validate.Range(min=1, max=1000),
                              metadata={"description": "Early-stopping patience in epochs (default: a tenth of "
                                                       "max_epochs, 5 to 20)."})
    seed = fields.Integer(load_default=None, validate=validate.Range(min=0, max=2**31 - 1))
    search_space = fields.Dict(
        keys=fields.String(), load_default=dict,
        metadata={"description": 'Narrow or fix hyperparameters (see GET /api/v1/search-space): '
                                 '{"num_layers": {"min": 1, "max": 3}, "activation": ["relu", "elu"], '
                                 '"dropout": 0.2}.'},
    )
    time_budget_s = fields.Integer(
        load_default=None, validate=validate.Range(min=1),
        metadata={"description": "Wall-clock limit on the whole search, from its start: the running trial "
                                 "stops at its next epoch boundary and the best model so far is kept."},
    )
    parallel_trials = fields.Integer(
        load_default=1, validate=validate.Range(min=1),
        metadata={"description": "Trials to run at the same time, each on its own worker (one search state)."},
    )
    image_size = fields.Integer(
        load_default=None, validate=validate.Range(min=1),
        metadata={"description": "Image datasets: the side length images are resized to inside the model "
                                 "(default: the median longer side, between 32 and 224)."},
    )


class CreateHeadersSchema(Schema):
    idempotency_key = fields.String(
        data_key=IDEMPOTENCY_KEY, load_default=None, validate=validate.Length(min=1, max=255),
        metadata={"description": "Retrying a POST with the same key returns the job the first one created "
                                 "instead of starting a second search."},
    )


class RunningTrialSchema(Schema):
    trial_id = fields.String()
    number = fields.Integer()
    epoch = fields.Integer(metadata={"description": "Epochs finished so far."})
    lane = fields.Integer(allow_none=True)
    attempt = fields.Integer(metadata={"description": "1 for a first run; more after a worker died."})
    started_at = fields.DateTime()


class JobSchema(SearchOptionsSchema):  # type: ignore[valid-type,misc]
    id = fields.String()
    team = fields.String(metadata={"description": "The team that owns it (the API key's team that created it)."})
    dataset_id = fields.String()
    target = fields.Function(_job_target, metadata={"description": "A column, or the label columns."})
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
    search_space = fields.Dict(allow_none=True, metadata={"description": "The narrowing, in canonical form."})
    time_budget_s = fields.Integer(allow_none=True)
    parallel_trials = fields.Integer()
    image_size = fields.Integer(allow_none=True, metadata={"description": "Image jobs: side length trained at."})
    cancel_requested = fields.Boolean()
    delete_requested = fields.Boolean(metadata={"description": "DELETE was asked while it ran: it is deleted once "
                                                               "its trials stop."})
    stop_reason = fields.String(allow_none=True, metadata={"enum": STOP_REASONS,
                                                           "description": "Why the search ended (or is ending)."})
    running_trials = fields.List(fields.Nested(RunningTrialSchema))
    elapsed_s = fields.Float(allow_none=True, metadata={"description": "Seconds since the search started."})
    eta_s = fields.Float(allow_none=True, metadata={
        "description": "Estimated seconds left, from the mean trial duration; null until a trial has finished."})
    classes = fields.List(fields.Raw(), allow_none=True,
                          metadata={"description": "Class labels; for multilabel one [negative, positive] pair "
                                                   "per target column."})
    best_score = fields.Float(allow_none=True)
    best_trial_id = fields.String(allow_none=True)
    best_model_id = fields.String(allow_none=True, metadata={
        "description": "The best model so far: while the search runs, the best trial's own weights (with its "
                       "preprocessing) as a servable model, replaced as better trials arrive; once the job "
                       "succeeds, the final model (model_id). Null until a trial has completed."})
    model_id = fields.String(allow_none=True, metadata={"description": "The final model."})
    error = fields.String(allow_none=True, metadata={"description": "Why the job failed, when it did."})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class TrialSchema(Schema):
    trial_id = fields.String()
    number = fields.Integer()
    state = fields.String(metadata={"enum": TRIAL_STATES})
    hyperparameters = fields.Dict()
    score = fields.Float(allow_none=True)
    best_epoch = fields.Integer(allow_none=True)
    epochs_done = fields.Integer()
    message = fields.String(allow_none=True)
    attempts = fields.Integer(metadata={"description": "Times the trial was started (a dead worker's trial reruns)."})
    lane = fields.Integer(allow_none=True)
    worker = fields.String(allow_none=True)
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


class HyperparameterImportanceSchema(Schema):
    name = fields.String()
    importance = fields.Float(metadata={"description": "Share of the score's variance this hyperparameter explains "
                                                       "on its own (0 to 1)."})


class JobImportanceSchema(Schema):
    job_id = fields.String()
    objective = fields.String()
    direction = fields.String()
    trials = fields.Integer(metadata={"description": "Completed trials the estimate rests on."})
    method = fields.String(metadata={"description": "functional ANOVA main effects on a random-forest surrogate of "
                                                    "the score, over the completed trials."})
    hyperparameters = fields.List(fields.Nested(HyperparameterImportanceSchema), metadata={
        "description": "Every hyperparameter that varied between the trials, most important first."})
