from marshmallow import Schema, fields, validate

from api.resources.common import EpochsField, JsonArray, PageArgs

MAX_INSTANCES = 100_000


class ModelSchema(Schema):
    id = fields.String()
    team = fields.String(metadata={"description": "The team that owns it (the API key's team that created it)."})
    state = fields.String(metadata={"enum": ["training", "ready", "failed"]})
    kind = fields.String(metadata={"enum": ["tabular", "image"],
                                   "description": "image: predict takes image files or base64 images."})
    job_id = fields.String()
    dataset_id = fields.String()
    task = fields.String()
    target = fields.String()
    classes = fields.List(fields.Raw(), allow_none=True)
    targets = fields.List(fields.String(), allow_none=True, metadata={"description": "Multilabel: label columns."})
    input_schema = fields.List(fields.Dict(), metadata={
        "description": "Columns a prediction request sends. `identifier: true` marks a text column of names or "
                       "identifiers (most training rows held a value no other row had): the model takes it but "
                       "learns nothing from its values."})
    hyperparameters = fields.Dict()
    validation_metrics = fields.Dict()
    test_metrics = fields.Dict(metadata={
        "description": "On the held-out test split the search never saw, measured before the refit on every row "
                       "(see refit)."})
    split_sizes = fields.Dict()
    confusion_matrix = fields.Dict(allow_none=True, metadata={"description": "On the test split."})
    refit = fields.Boolean(metadata={
        "description": "The served model (at least one ensemble member) was retrained, or fine-tuned, on every "
                       "row (train, validation and test) after the test metrics were measured."})
    refit_rows = fields.Integer(allow_none=True, metadata={"description": "Rows of that final training."})
    members = fields.List(fields.Dict(), allow_none=True, metadata={
        "description": "The trials the served model averages, with their weights (one for a single model): "
                       "trial_id, weight, epochs, refit (retrained on every row), retrainings (how many times, each "
                       "with its own seed; table models serve the mean of those retrainings and the trial's own "
                       "weights, in equal shares of the member's weight), fine_tune_passes "
                       "(passes over every row its trial's weights went on for when retraining it did not fit the "
                       "time budget), hyperparameters."})
    ensemble = fields.Dict(allow_none=True, metadata={
        "description": "How the ensemble was chosen: the objective, the greedy selection's validation loss "
                       "against the best single trial's, how many trials were candidates, whether the selection "
                       "was kept, prior_share (the weight then given equally to the two best trials, more the "
                       "fewer the validation rows) and served_validation_loss (the final weights' loss)."})
    supports_uncertainty = fields.Boolean(metadata={"description": "Has dropout, so mc_samples works."})
    interim = fields.Boolean(metadata={
        "description": "A running search's best trial as it is (its job's best_model_id): no ensemble, no refit; "
                       "removed when a better trial or the final model replaces it, unless aliased or deployed."})
    trial_id = fields.String(allow_none=True, metadata={"description": "An interim model's trial."})
    importance = fields.Dict(allow_none=True, metadata={
        "description": "Table models: permutation importance on the test rows (see /importance); null for images."})
    calibration = fields.Dict(allow_none=True, metadata={
        "description": "Classifiers: the fitted temperature, whether the served probabilities use it, and on the "
                       "test rows the reliability table and expected calibration error (ece) without (uncalibrated) "
                       "and with it (calibrated); null for regression."})
    error = fields.String(allow_none=True)
    deployed = fields.Boolean(metadata={"description": "Loaded and warmed by every serving process at start."})
    deployed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class ModelListArgs(PageArgs):
    deployed = fields.Boolean(load_default=None, metadata={"description": "Only deployed (true) or other (false)."})


class ModelHistorySchema(Schema):
    model_id = fields.String()
    epochs = EpochsField()


EXPLAIN_DESCRIPTION = (
    "Table models: per instance, each column's effect on the output, by baseline replacement: f(x) minus f(x "
    "with the column at its training median, or most frequent category). f is the value (regression), the "
    "predicted class's probability (multiclass), P(classes[1]) (binary), or each label's probability "
    "(multilabel). A column the model does not use gets 0.")


class PredictRequestSchema(Schema):
    instances = JsonArray(
        {"type": "object", "additionalProperties": True},
        required=True,
        validate=validate.Length(min=1, max=MAX_INSTANCES),
        metadata={"description": 'Rows as objects of raw values: [{"column": value, ...}]; null = missing. Image '
                                 'models: [{"b64": "<base64 of an image file>"}, ...].'},
    )
    mc_samples = fields.Integer(
        load_default=None, validate=validate.Range(min=2, max=1000),
        metadata={"description": "Monte Carlo dropout: average this many stochastic passes and return "
                                 "their standard deviation (models with dropout only)."},
    )
    explain = fields.Boolean(load_default=False, metadata={"description": EXPLAIN_DESCRIPTION})
    warnings = fields.Boolean(
        load_default=True,
        metadata={"description": "Table models: answer, per instance, the values the model never saw in training "
                                 "(a category, a number beyond the training range by over 10 % of it, a value "
                                 "missing where training had none). false: leave them out. They never change "
                                 "a prediction."},
    )


class BatchPredictFormSchema(Schema):
    file = fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "Table models: CSV (UTF-8, header row) or Parquet with the model's input columns; other "
                       "columns are ignored. Any number of rows: read in chunks, so memory stays bounded. Image "
                       "models: one or more PNG, JPEG, BMP, GIF or WebP files (any field names, e.g. 'file' "
                       "repeated), answered as JSON with the files named in order; 'mc_samples' may be a field."})
    passthrough = fields.String(metadata={
        "description": "Comma-separated columns of the file to copy into the CSV output (e.g. an id)."})
    explain = fields.Boolean(load_default=False, metadata={
        "description": "CSV output of table models: adds 'explains', 'explained_value' and one "
                       "'attribution:<column>' column per input column (see explain in the JSON request)."})


WARNINGS_FIELD = JsonArray({"type": "array", "items": {"type": "string"}}, metadata={
    "description": "Table models, unless the request said warnings: false: per instance, a list of what in it "
                   "the model never saw in training (empty when nothing)."})


EXPLANATIONS_FIELD = JsonArray({"type": "object"}, metadata={
    "description": "With explain: per instance {explains, value, attributions: {column: effect}}, largest "
                   "effect first (multilabel: value and attributions per label)."})


class PredictResponseSchema(Schema):
    predictions = JsonArray({}, metadata={
        "description": "Labels or numbers; for multilabel an object of label column -> predicted value."})
    std = JsonArray({}, metadata={
        "description": "With mc_samples: std of the value (regression), of the predicted class's probability "
                       "(classification), or per label (multilabel)."})
    mc_samples = fields.Integer()
    files = fields.List(fields.String(), metadata={"description": "Image uploads: the file of each prediction."})
    warnings = WARNINGS_FIELD
    explanations = EXPLANATIONS_FIELD


class ProbaResponseSchema(Schema):
    classes = fields.List(fields.Raw(), metadata={
        "description": "The class of each column; for multilabel the label columns."})
    probabilities = JsonArray({"type": "array", "items": {"type": "number"}}, metadata={
        "description": "Rows sum to 1; for multilabel each column is P(positive value) on its own."})
    positive_classes = fields.List(fields.Raw(), metadata={
        "description": "Multilabel: the value each label column's probability is for."})
    std = JsonArray({"type": "array", "items": {"type": "number"}}, metadata={"description": "With mc_samples."})
    mc_samples = fields.Integer()
    files = fields.List(fields.String(), metadata={"description": "Image uploads: the file of each row."})
    warnings = WARNINGS_FIELD
    explanations = EXPLANATIONS_FIELD


class DownloadArgs(Schema):
    format = fields.String(load_default="keras", validate=validate.OneOf(["keras", "savedmodel"]),
                           metadata={"description": "keras: the .keras file; savedmodel: a zip of a TensorFlow "
                                                    "SavedModel laid out as version 1/ for TensorFlow Serving."})


class ColumnImportanceSchema(Schema):
    name = fields.String(metadata={"description": "The input column."})
    mean = fields.Float(metadata={"description": "Mean drop of the metric when the column is shuffled."})
    std = fields.Float(metadata={"description": "Its standard deviation over the repeats."})


class ImportanceSchema(Schema):
    model_id = fields.String()
    method = fields.String(metadata={"description": "permutation: each column shuffled among the test rows."})
    split = fields.String(metadata={"description": "The rows it was measured on (the held-out test split, before "
                                                   "any refit)."})
    metric = fields.String(metadata={"description": "accuracy (classification) or r2 (regression)."})
    baseline = fields.Float(metadata={"description": "The metric with no column shuffled."})
    repeats = fields.Integer(metadata={"description": "Shuffles per column."})
    rows = fields.Integer()
    seconds = fields.Float(metadata={"description": "Time it took when the job finished."})
    columns = fields.List(fields.Nested(ColumnImportanceSchema), metadata={
        "description": "Every input column, most important first."})


class ProfileSchema(Schema):
    model_id = fields.String()
    columns = fields.List(fields.Dict(), metadata={
        "description": "Per input column, what the training rows held: rows, missing_share; numbers: min, max, "
                       "mean, quantiles (deciles), bins (edges and the share of rows in each); booleans and "
                       "categories: categories (value -> share, the 20 most frequent), other_share, distinct; "
                       "dates: as numbers, but min, max, mean, quantiles and bin edges as ISO 8601 text."})


class DriftArgs(Schema):
    hours = fields.Integer(load_default=24, validate=validate.Range(min=1, max=24 * 90), metadata={
        "description": "Compare the inputs served in this many last hours (whole hours, UTC)."})


class DriftSchema(Schema):
    model_id = fields.String()
    since = fields.DateTime(metadata={"description": "The start of the first hour counted."})
    rows = fields.Integer(metadata={"description": "Prediction inputs counted in that time (a sample when the "
                                                   "service is very busy)."})
    threshold = fields.Float(metadata={"description": "A column whose PSI is above this is drifted."})
    min_rows = fields.Integer(metadata={"description": "Columns are judged (drifted true/false) from this many "
                                                       "rows on; before, drifted is null."})
    drifted = fields.List(fields.String(), metadata={"description": "The drifted columns, most drifted first."})
    columns = fields.List(fields.Dict(), metadata={
        "description": "Per input column: name, kind, rows, psi, drifted, missing_share, training_missing_share, "
                       "and out_of_range_share (numbers beyond the training range by more than 10 % of it) or "
                       "unseen_share (categories never seen in training)."})
