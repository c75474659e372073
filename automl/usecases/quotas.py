"""Per-team quotas, so that one team (or one runaway script) cannot use up a shared service, and
each team's usage against them (``GET /api/v1/usage``).

- deployed models (each is loaded by every serving process at start),
- active jobs (queued or running) and the trials they may run at once (``parallel_trials``),
- stored bytes: datasets, job folders (tuner state, logs) and models, measured on disk.

A quota of 0 means no limit. Counts are checked when a request would add to them, in the request's
own transaction for jobs and deployments; two requests racing past the same last free place can
both pass (a soft limit, by one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automl.errors import QuotaExceeded, TooLarge
from automl.housekeeping import folder_bytes
from automl.settings import Settings
from automl.store import Store
from automl.store.records import ApiKeyRecord, DatasetRecord, JobRecord, JobState, ModelRecord

ACTIVE = (JobState.queued.value, JobState.running.value)


@dataclass(frozen=True)
class Usage:
    team: str
    deployed_models: int
    active_jobs: int
    parallel_trials: int  # trials the active jobs may run at once
    datasets_bytes: int
    jobs_bytes: int
    models_bytes: int

    @property
    def stored_bytes(self) -> int:
        return self.datasets_bytes + self.jobs_bytes + self.models_bytes

    def as_dict(self, settings: Settings) -> dict[str, object]:
        def entry(used: int, limit: int) -> dict[str, int | None]:
            return {"used": used, "limit": limit or None}

        return {
            "team": self.team,
            "deployed_models": entry(self.deployed_models, settings.quota_deployed_models),
            "active_jobs": entry(self.active_jobs, settings.quota_active_jobs),
            "parallel_trials": entry(self.parallel_trials, settings.quota_parallel_trials),
            "stored_bytes": {**entry(self.stored_bytes, settings.quota_stored_bytes),
                             "datasets": self.datasets_bytes, "jobs": self.jobs_bytes, "models": self.models_bytes},
        }


def _dataset_bytes(settings: Settings, path: Path) -> int:
    """A dataset's folder (the stored table, or the images and their index); its file alone where a record
    points outside a folder of its own."""
    root = settings.datasets_dir.resolve()
    folder = path.resolve().parent
    return folder_bytes(folder if folder != root and folder.is_relative_to(root) else path)


def team_usage(session: Session, settings: Settings, team: str, disk: bool = True) -> Usage:
    """The team's counts, and (``disk``) the bytes its datasets, job folders and models hold."""
    deployed = session.scalar(select(func.count()).select_from(ModelRecord)
                              .where(ModelRecord.team == team, ModelRecord.deployed.is_(True))) or 0
    active = session.execute(select(func.count(), func.coalesce(func.sum(JobRecord.parallel_trials), 0))
                             .where(JobRecord.team == team, JobRecord.state.in_(ACTIVE))).one()
    counts = Usage(team=team, deployed_models=int(deployed), active_jobs=int(active[0]),
                   parallel_trials=int(active[1]), datasets_bytes=0, jobs_bytes=0, models_bytes=0)
    if not disk:
        return counts
    datasets = session.scalars(select(DatasetRecord.path).where(DatasetRecord.team == team))
    jobs = session.scalars(select(JobRecord.id).where(JobRecord.team == team))
    models = session.scalars(select(ModelRecord.path).where(ModelRecord.team == team))
    return dataclasses.replace(
        counts,
        datasets_bytes=sum(_dataset_bytes(settings, Path(path)) for path in datasets),
        jobs_bytes=sum(folder_bytes(settings.jobs_dir / job_id) for job_id in jobs),
        models_bytes=sum(folder_bytes(Path(path)) for path in models if path),
    )


def teams(session: Session) -> list[str]:
    """Every team that holds a key or owns anything."""
    found: set[str] = set()
    for record_type in (ApiKeyRecord, DatasetRecord, JobRecord, ModelRecord):
        found.update(session.scalars(select(record_type.team).distinct()))
    return sorted(found)


def usage(store: Store, settings: Settings, team: str | None) -> list[Usage]:
    """``team``'s usage, or every team's (``None``: an admin's view)."""
    with store.session() as session:
        return [team_usage(session, settings, name) for name in ([team] if team is not None else teams(session))]


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def check_storage(store: Store, settings: Settings, team: str, incoming_bytes: int) -> None:
    """Refuse (413) what would take ``team`` past its stored-bytes quota."""
    limit = settings.quota_stored_bytes
    if not limit:
        return
    with store.session() as session:
        used = team_usage(session, settings, team).stored_bytes
    if used + incoming_bytes > limit:
        raise TooLarge(
            f"Team '{team}' stores {_size(used)} of its {_size(limit)} quota (AUTOML_QUOTA_STORED_BYTES), and this "
            f"would add {_size(incoming_bytes)}. Delete datasets, jobs or models you no longer need (DELETE "
            "/api/v1/datasets/{id}, /jobs/{id}, /models/{id}; GET /api/v1/usage shows what is used) or ask an "
            "operator to raise the quota.")


def check_new_job(session: Session, settings: Settings, team: str, parallel_trials: int) -> None:
    """Refuse (409) a job past the team's active-job or parallel-trial quota, or when its storage is full."""
    current = team_usage(session, settings, team, disk=bool(settings.quota_stored_bytes))
    if settings.quota_active_jobs and current.active_jobs + 1 > settings.quota_active_jobs:
        raise QuotaExceeded(
            f"Team '{team}' already has {current.active_jobs} queued or running jobs, its quota "
            f"(AUTOML_QUOTA_ACTIVE_JOBS={settings.quota_active_jobs}). Wait for one to finish or cancel one.")
    if settings.quota_parallel_trials and current.parallel_trials + parallel_trials > settings.quota_parallel_trials:
        raise QuotaExceeded(
            f"Team '{team}''s active jobs run {current.parallel_trials} trials at once; this job's "
            f"parallel_trials={parallel_trials} would pass its quota of {settings.quota_parallel_trials} "
            "(AUTOML_QUOTA_PARALLEL_TRIALS). Ask for fewer parallel_trials or wait for a job to finish.")
    if settings.quota_stored_bytes and current.stored_bytes >= settings.quota_stored_bytes:
        raise TooLarge(
            f"Team '{team}' stores {_size(current.stored_bytes)}, its whole {_size(settings.quota_stored_bytes)} "
            "quota (AUTOML_QUOTA_STORED_BYTES), and a job writes more. Delete datasets, jobs or models you no "
            "longer need first.")


def check_deploy(session: Session, settings: Settings, team: str) -> None:
    limit = settings.quota_deployed_models
    if not limit:
        return  # no quota: nothing to count
    deployed = team_usage(session, settings, team, disk=False).deployed_models
    if deployed >= limit:
        raise QuotaExceeded(
            f"Team '{team}' already has {deployed} deployed models, its quota (AUTOML_QUOTA_DEPLOYED_MODELS="
            f"{limit}). Undeploy one first (DELETE /api/v1/models/{{id}}/deploy).")
