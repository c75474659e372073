from marshmallow import Schema, ValidationError, fields, validate, validates

from automl.access import Role, parse_duration

ROLE_NAMES = [role.name for role in Role]


class KeyListArgs(Schema):
    team = fields.String(load_default=None, metadata={"description": "Only this team's keys."})
    revoked = fields.Boolean(load_default=False, metadata={"description": "Include revoked keys."})


class KeyCreateSchema(Schema):
    team = fields.String(required=True, validate=validate.Length(min=1, max=64),
                         metadata={"description": "The team the key acts for (created with its first key)."})
    role = fields.String(load_default="write", validate=validate.OneOf(ROLE_NAMES),
                         metadata={"description": "predict: predictions and model cards; read: every GET; "
                                                  "write: everything its team may do; admin: every team."})
    name = fields.String(load_default=None, validate=validate.Length(max=255),
                         metadata={"description": "A label: who or what uses the key."})
    expires_in = fields.String(load_default=None, metadata={"description": "e.g. 90d, 12h or 2w; none: never."})

    @validates("expires_in")
    def _duration(self, value: str | None, **_: object) -> None:
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None


class KeySchema(Schema):
    id = fields.String(metadata={"description": "The key's id (the 8 hex digits after amk_); never the key."})
    team = fields.String()
    role = fields.String()
    name = fields.String(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class CreatedKeySchema(KeySchema):
    key = fields.String(metadata={"description": "The key itself: shown only in this answer."})
