"""``/api/v1/datasets``: upload and inspect datasets (CSV/Parquet tables, zip archives of images)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.datastructures import FileStorage

from api.auth import rate_limited, scope, stores_upload
from api.resources.common import PageArgs
from api.resources.datasets.schemas import DatasetSchema, UploadSchema
from api.services import services
from automl.errors import InvalidDataset
from automl.store import catalogue
from automl.usecases.datasets import register_dataset
from automl.usecases.deletion import delete_dataset

blp = Blueprint("datasets", __name__, url_prefix="/api/v1/datasets", description="Upload and inspect datasets.")


@blp.route("")
class Datasets(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, DatasetSchema(many=True))
    def get(self, page: dict[str, int]) -> Any:
        """List datasets, newest first."""
        with services().store.session() as session:
            return catalogue.list_datasets(session, page["limit"], page["offset"], scope())

    @stores_upload
    @rate_limited("upload")
    @blp.arguments(UploadSchema, location="files")
    @blp.response(201, DatasetSchema)
    def post(self, files: dict[str, FileStorage]) -> Any:
        """Upload a CSV or Parquet file, or a zip archive of images (multipart field ``file``).

        Tables: the column schema is inferred. Images: one folder per class (``cats/001.jpg``) or a
        ``labels.csv`` (``filename`` + label columns); the answer reports classes, images per class,
        sizes, channels and the files that could not be read (skipped)."""
        svc = services()
        upload = files["file"]
        if not isinstance(upload, FileStorage):
            raise InvalidDataset("Send the dataset as a file in the multipart form field 'file'.")
        staging = svc.settings.tmp_dir / f"upload-{uuid.uuid4().hex}"
        try:
            upload.save(staging)
            return register_dataset(svc.store, svc.settings, staging, upload.filename or "dataset.csv", scope())
        finally:
            staging.unlink(missing_ok=True)


@blp.route("/<string:dataset_id>")
class Dataset(MethodView):
    @blp.response(200, DatasetSchema)
    def get(self, dataset_id: str) -> Any:
        """A dataset and its inferred schema."""
        with services().store.session() as session:
            return catalogue.get_dataset(session, dataset_id, scope())

    @blp.response(204)
    def delete(self, dataset_id: str) -> None:
        """Delete the dataset: its record and its folder (the stored table, or the images and their index).
        409 while a job or a model trained on it exists, naming them: delete those first."""
        svc = services()
        delete_dataset(svc.store, svc.settings, dataset_id, scope())
