"""Storage calls for what a team owns and serves: datasets, models (and their deployment), aliases, and
the counts of each model's prediction inputs that drift is measured from.

Functions take a ``Session`` (the caller owns the transaction) and return records or plain
values; no HTTP, Celery or TensorFlow here.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from automl.access import Scope
from automl.errors import Conflict, NotFound
from automl.store.common import owned, visible
from automl.store.records import (
    AliasRecord,
    DatasetRecord,
    DriftCountsRecord,
    JobRecord,
    ModelRecord,
    ModelState,
    utcnow,
)


def get_dataset(session: Session, dataset_id: str, scope: Scope | None = None) -> DatasetRecord:
    record = session.get(DatasetRecord, dataset_id)
    if not visible(record, scope):
        raise NotFound(f"No dataset with id '{dataset_id}'.")
    return record  # type: ignore[return-value]


def list_datasets(session: Session, limit: int = 100, offset: int = 0,
                  scope: Scope | None = None) -> list[DatasetRecord]:
    query = select(DatasetRecord).order_by(DatasetRecord.created_at.desc()).limit(limit).offset(offset)
    return list(session.scalars(owned(query, DatasetRecord, scope)))


def get_model(session: Session, model_id: str, scope: Scope | None = None) -> ModelRecord:
    record = session.get(ModelRecord, model_id)
    if not visible(record, scope):
        raise NotFound(f"No model with id '{model_id}'.")
    return record  # type: ignore[return-value]


def list_models(session: Session, limit: int = 100, offset: int = 0,
                deployed: bool | None = None, scope: Scope | None = None) -> list[ModelRecord]:
    query = select(ModelRecord).order_by(ModelRecord.created_at.desc()).limit(limit).offset(offset)
    if deployed is not None:
        query = query.where(ModelRecord.deployed.is_(deployed))
    return list(session.scalars(owned(query, ModelRecord, scope)))


def deployed_models(session: Session) -> list[ModelRecord]:
    """Ready models marked deployed, oldest deployment first (the order serving processes load them)."""
    query = (select(ModelRecord)
             .where(ModelRecord.deployed.is_(True), ModelRecord.state == ModelState.ready.value)
             .order_by(ModelRecord.deployed_at))
    return list(session.scalars(query))


def set_deployed(session: Session, record: ModelRecord, deployed: bool) -> ModelRecord:
    if record.deployed != deployed:
        record.deployed = deployed
        record.deployed_at = utcnow() if deployed else None
        session.flush()
    return record


# --- aliases: names are per team ---------------------------------------------------------


def find_alias(session: Session, name: str, scope: Scope | None = None) -> AliasRecord | None:
    """The caller's alias ``name``. An admin (or an internal caller) also finds another team's
    alias when its name is unique across teams; the caller's own team wins a tie."""
    query = select(AliasRecord).where(AliasRecord.name == name).order_by(AliasRecord.team)
    found = list(session.scalars(owned(query, AliasRecord, scope)))
    own = [a for a in found if scope is not None and a.team == scope.team]
    if own:
        return own[0]
    if len(found) > 1:
        teams = ", ".join(a.team for a in found)
        raise Conflict(f"Alias '{name}' exists in several teams ({teams}); use the model id instead.")
    return found[0] if found else None


def get_alias(session: Session, name: str, scope: Scope | None = None) -> AliasRecord:
    record = find_alias(session, name, scope)
    if record is None:
        raise NotFound(f"No alias named '{name}'.")
    return record


def list_aliases(session: Session, scope: Scope | None = None) -> list[AliasRecord]:
    query = select(AliasRecord).order_by(AliasRecord.name, AliasRecord.team)
    return list(session.scalars(owned(query, AliasRecord, scope)))


def set_alias(session: Session, team: str, name: str, model_id: str) -> tuple[AliasRecord, bool]:
    """Point ``team``'s alias ``name`` at ``model_id``; True when the alias is new."""
    record = session.get(AliasRecord, (team, name), with_for_update=True)
    created = record is None
    if record is None:
        record = AliasRecord(team=team, name=name, model_id=model_id)
        session.add(record)
    record.model_id = model_id
    record.updated_at = utcnow()
    session.flush()
    return record, created


def delete_alias(session: Session, name: str, scope: Scope | None = None) -> None:
    session.delete(get_alias(session, name, scope))


def resolve_model(session: Session, name: str, scope: Scope | None = None) -> ModelRecord:
    """A model by id, or by an alias pointing at it; another team's is reported as missing."""
    record = session.get(ModelRecord, name)
    if visible(record, scope):
        return record  # type: ignore[return-value]
    alias = find_alias(session, name, scope)
    model = session.get(ModelRecord, alias.model_id) if alias is not None else None
    if not visible(model, scope):
        raise NotFound(f"No model with id or alias '{name}'.")
    return model  # type: ignore[return-value]


def aliases_of(session: Session, model_id: str) -> list[str]:
    return list(session.scalars(select(AliasRecord.name).where(AliasRecord.model_id == model_id)
                                .order_by(AliasRecord.name)))


def why_model_is_kept(session: Session, record: ModelRecord) -> str | None:
    """What stops the model from being deleted (deployed, aliased, still training), said as what to do."""
    if record.deployed:
        return f"Model '{record.id}' is deployed; undeploy it first (DELETE /api/v1/models/{record.id}/deploy)."
    aliases = aliases_of(session, record.id)
    if aliases:
        named = ", ".join(f"'{a}'" for a in aliases[:10])
        return (f"Model '{record.id}' is what alias(es) {named} point at; move or delete them first "
                "(PUT or DELETE /api/v1/aliases/{name}).")
    if record.state == ModelState.training.value:
        return f"Model '{record.id}' is being trained by job '{record.job_id}'; wait for the job, or cancel it."
    return None


def delete_model_record(session: Session, record: ModelRecord) -> str | None:
    """Remove the model's record and its drift counts, and the job references to it; its folder's path,
    for the caller to delete once committed."""
    session.execute(update(JobRecord).where(JobRecord.model_id == record.id).values(model_id=None))
    session.execute(update(JobRecord).where(JobRecord.best_model_id == record.id).values(best_model_id=None))
    session.execute(delete(DriftCountsRecord).where(DriftCountsRecord.model_id == record.id))
    session.delete(record)
    return record.path


def models_of_job(session: Session, job_id: str) -> list[ModelRecord]:
    return list(session.scalars(select(ModelRecord).where(ModelRecord.job_id == job_id)))


def users_of_dataset(session: Session, dataset_id: str) -> list[str]:
    """The jobs (and models of jobs since deleted) that were trained on the dataset."""
    jobs = session.scalars(select(JobRecord.id).where(JobRecord.dataset_id == dataset_id).order_by(JobRecord.id))
    models = session.scalars(select(ModelRecord.id).where(ModelRecord.dataset_id == dataset_id))
    return [f"job '{j}'" for j in jobs] + [f"model '{m}'" for m in models]


def existing_models(session: Session, model_ids: list[str]) -> set[str]:
    return set(session.scalars(select(ModelRecord.id).where(ModelRecord.id.in_(model_ids)))) if model_ids else set()


def retire_interim_model(session: Session, model_id: str) -> str | None:
    """Remove an interim model nothing refers to any more (no alias, not deployed): its record and its drift
    counts. Its folder's path, for the caller to delete once committed; None when it is kept."""
    record = session.get(ModelRecord, model_id)
    if record is None or not record.interim or why_model_is_kept(session, record):
        return None
    return delete_model_record(session, record)


# --- drift counts ---------------------------------------------------------------------------------


def add_drift_counts(session: Session, model_id: str, hour: datetime, rows: int, counts: dict[str, Any]) -> bool:
    """Add ``counts`` to the model's counts of ``hour`` (the row is locked while it is updated, so
    serving processes flushing at once all count); False when the model no longer exists."""
    from automl.insight.drift import merge

    if session.get(ModelRecord, model_id) is None:
        return False
    record = session.get(DriftCountsRecord, (model_id, hour), with_for_update=True)
    if record is None:
        session.add(DriftCountsRecord(model_id=model_id, hour=hour, rows=rows, counts=counts))
        return True
    record.counts = merge(copy.deepcopy(record.counts), counts)  # a new value, so the JSON column is written
    record.rows += rows
    return True


def drift_counts_since(session: Session, model_id: str, since: datetime) -> tuple[int, dict[str, Any]]:
    """(rows, counts) of the model's inputs in the hours from ``since``'s on, summed."""
    from automl.insight.drift import merge

    total: dict[str, Any] = {}
    rows = 0
    for record in session.scalars(select(DriftCountsRecord).where(
            DriftCountsRecord.model_id == model_id, DriftCountsRecord.hour >= since)):
        merge(total, record.counts)
        rows += record.rows
    return rows, total


def prune_drift_counts(session: Session, before: datetime) -> int:
    """Drop the counts of hours before ``before``; how many hour rows went."""
    result = session.execute(delete(DriftCountsRecord).where(DriftCountsRecord.hour < before))
    return int(getattr(result, "rowcount", 0) or 0)
