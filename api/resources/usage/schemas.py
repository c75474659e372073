from marshmallow import Schema, fields


class UsageArgs(Schema):
    team = fields.String(load_default=None, metadata={"description": "Admin keys: only this team (default: every "
                                                                     "team). Other keys always see their own."})


class QuotaSchema(Schema):
    used = fields.Integer()
    limit = fields.Integer(allow_none=True, metadata={"description": "null: no limit."})


class StoredBytesSchema(QuotaSchema):
    datasets = fields.Integer()
    jobs = fields.Integer()
    models = fields.Integer()


class TeamUsageSchema(Schema):
    team = fields.String()
    deployed_models = fields.Nested(QuotaSchema)
    active_jobs = fields.Nested(QuotaSchema, metadata={"description": "Queued or running jobs."})
    parallel_trials = fields.Nested(QuotaSchema, metadata={"description": "Trials the active jobs may run at once."})
    stored_bytes = fields.Nested(StoredBytesSchema, metadata={"description": "Datasets, job folders and models "
                                                                             "on disk."})


class UsageSchema(Schema):
    teams = fields.List(fields.Nested(TeamUsageSchema))
