"""Submitting a job: validate and record it, queue each of its lanes, replay a retried submission."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy.exc import IntegrityError

from automl.access import Scope
from automl.errors import BrokerUnavailable, InvalidJobRequest
from automl.jobs import JobRequest, create_job, progress
from automl.settings import Settings
from automl.store import Store, searches
from automl.usecases import quotas

log = logging.getLogger(__name__)

Queue = Callable[[str, int, int], None]  # (job id, lane, generation): puts a lane's first step on the broker


def submit_job(store: Store, settings: Settings, request: JobRequest, scope: Scope, queue: Queue,
               idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
    """(the job's progress view, whether it is a replay of an earlier submission).

    With an ``idempotency_key`` a repeated request (a client retrying after a timeout) gets the job
    the first one created, not a second search; the same key with a different body is a 422. Keys
    are per team. If the broker cannot take the job, the job is not kept (``BrokerUnavailable``).
    """
    # Another team's identical key is another request (and reveals nothing).
    key = hashlib.sha256(f"{scope.team}\0{idempotency_key}".encode()).hexdigest() if idempotency_key else None
    fingerprint = hashlib.sha256(json.dumps(asdict(request), sort_keys=True, default=str).encode()).hexdigest()
    if key:
        replay = _replay(store, key, idempotency_key or "", fingerprint)
        if replay is not None:
            return replay, True
    try:
        with store.session() as session:
            quotas.check_new_job(session, settings, scope.team, request.parallel_trials)
            job = create_job(session, settings, request, scope, key, fingerprint)
    except IntegrityError:  # the same key, committed by a concurrent request a moment earlier
        replay = _replay(store, key, idempotency_key or "", fingerprint) if key else None
        if replay is None:
            raise
        return replay, True
    try:
        for lane in range(job.parallel_trials):
            queue(job.id, lane, 0)
    except Exception as exc:
        log.error("could not queue job %s: %s", job.id, exc, exc_info=True)
        with store.session() as session:
            session.delete(searches.get_job(session, job.id))
        raise BrokerUnavailable("The task queue is unreachable, so the job was not created. Try again shortly.") \
            from exc
    with store.session() as session:
        return progress(session, searches.get_job(session, job.id)), False


def _replay(store: Store, key: str, given: str, fingerprint: str) -> dict[str, Any] | None:
    with store.session() as session:
        job = searches.find_job_by_idempotency_key(session, key)
        if job is None:
            return None
        if job.request_fingerprint != fingerprint:
            raise InvalidJobRequest(
                f"Idempotency-Key '{given[:80]}' was already used for a different job request (job '{job.id}'). "
                "Use a new key for a new request, or resend the original body.",
                {"Idempotency-Key": ["reused with a different body"]},
            )
        return progress(session, job)
