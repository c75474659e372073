"""Deleting what a team owns: a model, a job (with its models), a dataset. Records and files go;
nothing else is touched, and anything still in use is refused with a 409 that says what to do.

- A model is kept while it is deployed, aliased or still training.
- A job that has not ended is cancelled first: a queued one at once (then deleted), a running one
  at its trials' next epoch boundary, and the worker that ends it deletes it then (no final model
  is trained for it). Its models go with it, unless one of them is deployed or aliased.
- A dataset is kept while a job (or a model) was trained on it: delete those first.

Files are removed after the records are committed, and only inside the service's own folders.
Other serving processes drop a deleted model they hold loaded at their next refresh
(``AUTOML_DEPLOYED_REFRESH_S``); this process at once.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from automl.access import Scope
from automl.errors import Conflict
from automl.jobs import cancel_job
from automl.serving.cache import ModelCache
from automl.settings import Settings
from automl.store import Store, catalogue, searches
from automl.store.records import JobState, ModelState

log = logging.getLogger(__name__)


def remove_inside(path: str | Path | None, root: Path) -> None:
    """Remove ``path`` (a folder or a file) if it lies inside ``root``: never anything outside the service's
    own folders, whatever a record says."""
    if not path:
        return
    target = Path(path).resolve()
    if target == root or not target.is_relative_to(root):
        log.warning("not removing %s: outside %s", target, root)
        return
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def delete_model(store: Store, settings: Settings, cache: ModelCache, model_id: str, scope: Scope) -> None:
    with store.session() as session:
        record = catalogue.get_model(session, model_id, scope)
        reason = catalogue.why_model_is_kept(session, record)
        if reason:
            raise Conflict(reason)
        path = catalogue.delete_model_record(session, record)
    cache.discard(model_id)
    remove_inside(path, settings.models_dir.resolve())


def delete_job(store: Store, settings: Settings, cache: ModelCache | None, job_id: str,
               scope: Scope | None) -> bool:
    """Delete the job now (True), or, while it runs, cancel it and leave its deletion to the worker that ends
    it (False). ``scope`` None: the caller is that worker."""
    with store.session() as session:
        job = searches.get_job(session, job_id, scope=scope)
        if not JobState(job.state).finished:
            _models_in_use(session, job_id)  # what would refuse the deletion later refuses it before the cancel
            job = cancel_job(session, job_id, scope)  # a queued job ends here and now
        if not JobState(job.state).finished:
            job.delete_requested = True
            return False
    with store.session() as session:
        _models_in_use(session, job_id)
        models = catalogue.models_of_job(session, job_id)
        removed = [(model.id, catalogue.delete_model_record(session, model)) for model in models]
        searches.delete_job_records(session, job_id)
    for model_id, path in removed:
        if cache is not None:
            cache.discard(model_id)
        remove_inside(path, settings.models_dir.resolve())
    remove_inside(settings.jobs_dir / job_id, settings.jobs_dir.resolve())
    return True


def _models_in_use(session: Session, job_id: str) -> None:
    for model in catalogue.models_of_job(session, job_id):
        reason = catalogue.why_model_is_kept(session, model)
        if reason and model.state != ModelState.training.value:
            raise Conflict(f"Job '{job_id}' has a model that is still in use. {reason}")


def delete_dataset(store: Store, settings: Settings, dataset_id: str, scope: Scope) -> None:
    with store.session() as session:
        record = catalogue.get_dataset(session, dataset_id, scope)
        users = catalogue.users_of_dataset(session, record.id)
        if users:
            listed = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
            raise Conflict(f"Dataset '{record.id}' was used by {listed}; delete them first.")
        folder = Path(record.path).parent
        session.delete(record)
    remove_inside(folder, settings.datasets_dir.resolve())
