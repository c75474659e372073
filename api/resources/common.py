"""Schemas shared by several resources."""

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from api.plots import MAX_HEIGHT, MAX_WIDTH, MIN_HEIGHT, MIN_WIDTH


class PageArgs(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**31 - 1))


class PlotArgs(Schema):
    width = fields.Integer(load_default=900, validate=validate.Range(min=MIN_WIDTH, max=MAX_WIDTH),
                           metadata={"description": "Image width in pixels."})
    height = fields.Integer(load_default=None, validate=validate.Range(min=MIN_HEIGHT, max=MAX_HEIGHT),
                            metadata={"description": "Image height in pixels (default: 240 per metric panel)."})


PNG_ANSWER = {"description": "Learning curves: one panel per metric, training solid and validation dashed.",
              "content_type": "image/png"}


class EpochsField(fields.List):
    """Per-epoch metrics: ``[{"epoch": 0, "loss": 0.7, "val_loss": 0.6, ...}, ...]``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(fields.Dict(keys=fields.String()), **kwargs)  # type: ignore[arg-type]


class JsonArray(fields.Raw):
    """A JSON array passed through whole: marshmallow does not visit each element (for 10,000 rows
    that took tens of milliseconds per request); the elements are checked where they are used.
    ``items`` is the element's OpenAPI schema."""

    def __init__(self, items: dict[str, Any], **kwargs: Any) -> None:
        metadata = {"type": "array", "items": items, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        return value
