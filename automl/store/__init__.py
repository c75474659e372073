"""Metadata store (SQLAlchemy 2, migrated with Alembic) and the artifact layout on disk."""

from automl.store.db import Store

__all__ = ["Store"]
