from marshmallow import Schema, fields


class UploadSchema(Schema):
    file = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary",
                  "description": "A CSV (UTF-8, header row) or Parquet file, or a zip archive of PNG, JPEG, BMP, "
                                 "GIF or WebP images: one folder per class, or with a labels.csv "
                                 "(filename,label[,label...])."},
    )


class ColumnSchema(Schema):
    name = fields.String()
    type = fields.String(metadata={"enum": ["numeric", "boolean", "categorical", "datetime"],
                                   "description": "datetime: ISO 8601 dates or date-times (2024-05-17, "
                                                  "2024-05-17T08:30:00Z), taken as days since 1970 and "
                                                  "their day of the week, time of year and time of day"})
    missing = fields.Integer(metadata={"description": "Rows with no value."})
    unique = fields.Integer(metadata={"description": "Distinct non-missing values."})
    stats = fields.Dict(metadata={"description": "numeric columns: mean, std, min, max; datetime columns: "
                                                 "min, max"})
    top_values = fields.Dict(metadata={"description": "boolean/categorical: most frequent values and counts"})


class ImagesSchema(Schema):
    layout = fields.String(metadata={"enum": ["folders", "labels_csv"]})
    n_images = fields.Integer()
    label_columns = fields.List(fields.String())
    channels = fields.Integer(metadata={"description": "1 (all images grayscale) or 3 (RGB; alpha dropped)."})
    formats = fields.Dict(metadata={"description": "Images per file format."})
    modes = fields.Dict(metadata={"description": "Images per Pillow mode (L, RGB, RGBA, P, ...)."})
    sizes = fields.Dict(metadata={"description": "Width x height seen: distinct, min, max, median, most_common."})
    images_per_class = fields.Dict(metadata={"description": "One label column: images per class."})
    n_unreadable = fields.Integer()
    unreadable = fields.List(fields.Dict(), metadata={"description": "Skipped files and why (first 100)."})


class DatasetSchema(Schema):
    id = fields.String()
    team = fields.String(metadata={"description": "The team that owns it (the API key's team that created it)."})
    name = fields.String()
    kind = fields.String(metadata={"enum": ["tabular", "image"]})
    source_format = fields.String()
    n_rows = fields.Integer()
    n_columns = fields.Integer()
    size_bytes = fields.Integer()
    columns = fields.List(fields.Nested(ColumnSchema), metadata={"description": "Image datasets: the labels."})
    images = fields.Nested(ImagesSchema, allow_none=True)
    created_at = fields.DateTime()
