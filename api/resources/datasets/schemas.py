from marshmallow import Schema, fields


class UploadSchema(Schema):
    file = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "A CSV (UTF-8, header row) or Parquet file."},
    )


class ColumnSchema(Schema):
    name = fields.String()
    type = fields.String(metadata={"enum": ["numeric", "boolean", "categorical"]})
    missing = fields.Integer(metadata={"description": "Rows with no value."})
    unique = fields.Integer(metadata={"description": "Distinct non-missing values."})
    stats = fields.Dict(metadata={"description": "numeric columns: mean, std, min, max"})
    top_values = fields.Dict(metadata={"description": "boolean/categorical: most frequent values and counts"})


class DatasetSchema(Schema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    source_format = fields.String()
    n_rows = fields.Integer()
    n_columns = fields.Integer()
    size_bytes = fields.Integer()
    columns = fields.List(fields.Nested(ColumnSchema))
    created_at = fields.DateTime()
