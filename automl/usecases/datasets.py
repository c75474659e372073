"""Registering an uploaded dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

from automl.access import Scope
from automl.datasets.ingest import ingest_file
from automl.errors import TooLarge
from automl.housekeeping import folder_bytes
from automl.settings import Settings
from automl.store import Store
from automl.store.records import DatasetRecord
from automl.usecases import quotas


def register_dataset(store: Store, settings: Settings, upload: Path, filename: str, scope: Scope) -> DatasetRecord:
    """Ingest ``upload`` (a CSV, Parquet or image zip) and record it in the caller's team.

    Refusals (``InvalidDataset``, ``TooLarge``) say what to fix and leave nothing behind; so does a
    failure to write the record, which removes the ingested files again.
    """
    dataset = ingest_file(upload, filename, settings.datasets_dir, settings.upload_limits)
    try:  # the upload's size was checked before it was read; what it became on disk is checked here
        quotas.check_storage(store, settings, scope.team, folder_bytes(dataset.path.parent))
    except TooLarge:
        shutil.rmtree(dataset.path.parent, ignore_errors=True)
        raise
    record = DatasetRecord(
        id=dataset.id,
        team=scope.team,
        name=dataset.name,
        source_format=dataset.source_format,
        path=str(dataset.path),
        n_rows=dataset.n_rows,
        n_columns=dataset.n_columns,
        size_bytes=dataset.size_bytes,
        columns=dataset.columns,
        kind=dataset.kind,
        images=dataset.images,
    )
    try:
        with store.session() as session:
            session.add(record)
    except BaseException:
        shutil.rmtree(dataset.path.parent, ignore_errors=True)
        raise
    return record
