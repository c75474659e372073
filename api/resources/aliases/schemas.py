from marshmallow import Schema, fields, validate

ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class AliasSetSchema(Schema):
    model_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                             metadata={"description": "A ready model."})


class AliasSchema(Schema):
    team = fields.String(metadata={"description": "The team that owns it (the API key's team that created it)."})
    name = fields.String()
    model_id = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
