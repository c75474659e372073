"""A model by id or alias, as the caller's team may see it: its loaded predictor, deployment, aliases and
drift report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automl.access import Scope
from automl.errors import NotReady
from automl.insight import drift, profile
from automl.serving.cache import ModelCache
from automl.serving.drift import DriftMonitor, window_start
from automl.serving.predictor import Predictor
from automl.serving.warmup import Warmup
from automl.settings import Settings
from automl.store import Store, catalogue
from automl.store.records import AliasRecord, ModelRecord, ModelState
from automl.usecases import quotas


class ModelResolver:
    """Turns a model id or alias into the loaded model, for a caller's scope.

    Aliases are looked up on every call (they move); a ready model never changes, so once it is
    loaded and its owner known, a call for its id skips the database.
    """

    def __init__(self, store: Store, cache: ModelCache) -> None:
        self.store = store
        self.cache = cache
        self._owners: dict[str, str] = {}  # model id -> owning team (a model's team never changes)

    def predictor(self, ref: str, scope: Scope) -> Predictor:
        owner = self._owners.get(ref)
        if owner is not None and scope.sees(owner):
            cached = self.cache.peek(ref)
            if cached is not None:
                return cached
        with self.store.session() as session:
            record = catalogue.resolve_model(session, ref, scope)
        self._owners[record.id] = record.team
        _require_ready(record, "predict")
        return self.cache.get(record.id, Path(record.path or ""))


def _require_ready(record: ModelRecord, action: str) -> None:
    if record.state != ModelState.ready.value or not record.path:
        detail = f" ({record.error})" if record.error else ""
        raise NotReady(f"Model '{record.id}' is {record.state}{detail}; it can {action} once its job "
                       f"'{record.job_id}' has succeeded.")


def deploy(store: Store, settings: Settings, warmup: Warmup, ref: str, scope: Scope) -> ModelRecord:
    """Mark the model deployed (every serving process loads it at start) and load it in this one, within the
    team's deployed-models quota."""
    with store.session() as session:
        record = catalogue.resolve_model(session, ref, scope)
        _require_ready(record, "be deployed")
        if not record.deployed:
            quotas.check_deploy(session, settings, record.team)
        catalogue.set_deployed(session, record, True)
    warmup.load(record.id, Path(record.path or ""))
    return record


def undeploy(store: Store, warmup: Warmup, ref: str, scope: Scope) -> ModelRecord:
    """Serving processes stop loading it at start; it stays servable, loaded on demand."""
    with store.session() as session:
        record = catalogue.set_deployed(session, catalogue.resolve_model(session, ref, scope), False)
    warmup.forget(record.id)
    return record


def set_alias(store: Store, name: str, model_id: str, scope: Scope) -> tuple[AliasRecord, bool]:
    """Point ``name`` at a ready model of the caller's team (created: True for a new alias)."""
    with store.session() as session:
        model = catalogue.get_model(session, model_id, scope)
        _require_ready(model, "get an alias")
        return catalogue.set_alias(session, scope.team, name, model.id)


def training_profile(record: ModelRecord) -> dict[str, Any]:
    """What the model saw in training, per input column, as users read it (dates as ISO 8601 text)."""
    return {"model_id": record.id, "columns": profile.shown(record.profile or [])}


def drift_report(store: Store, monitor: DriftMonitor, record: ModelRecord, hours: int) -> dict[str, Any]:
    """The model's drift over the last ``hours`` whole hours: this process's counts flushed first, then
    every process's counts summed and compared with the training profile."""
    monitor.flush()
    since = window_start(hours)
    with store.session() as session:
        rows, counts = catalogue.drift_counts_since(session, record.id, since)
    columns = drift.report(record.profile or [], counts)
    judged = sorted((c for c in columns if c["drifted"]), key=lambda c: -c["psi"])
    return {"model_id": record.id, "since": since, "rows": rows, "threshold": drift.THRESHOLD,
            "min_rows": drift.MIN_ROWS, "drifted": [c["name"] for c in judged], "columns": columns}
