"""Schemas shared by several resources."""

from marshmallow import Schema, fields, validate


class PageArgs(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class EpochsField(fields.List):
    """Per-epoch metrics: ``[{"epoch": 0, "loss": 0.7, "val_loss": 0.6, ...}, ...]``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(fields.Dict(keys=fields.String()), **kwargs)  # type: ignore[arg-type]
