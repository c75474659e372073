"""``/api/v1/jobs``: submit searches, follow them, read the leaderboard and histories."""

from __future__ import annotations

import logging
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.resources.common import PageArgs
from api.resources.jobs.schemas import (
    JobCreateSchema,
    JobSchema,
    LeaderboardSchema,
    TrialHistorySchema,
)
from api.services import services
from automl.errors import BrokerUnavailable
from automl.jobs import JobRequest, create_job
from automl.store import repository
from tasks.celery_app import send_advance

log = logging.getLogger(__name__)
blp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs", description="Searches and their trials.")


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, JobSchema(many=True))
    def get(self, page: dict[str, int]) -> Any:
        """List jobs, newest first."""
        with services().store.session() as session:
            return repository.list_jobs(session, page["limit"], page["offset"])

    @blp.arguments(JobCreateSchema)
    @blp.response(202, JobSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Start a Keras Tuner search on a dataset; answers at once with the queued job."""
        svc = services()
        with svc.store.session() as session:
            job = create_job(session, svc.settings, JobRequest(**body))
        try:
            send_advance(svc.celery, job.id)
        except Exception as exc:
            log.error("could not queue job %s: %s", job.id, exc)
            with svc.store.session() as session:
                session.delete(repository.get_job(session, job.id))
            raise BrokerUnavailable(
                "The task queue is unreachable, so the job was not created. Try again shortly."
            ) from exc
        return job


@blp.route("/<string:job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    def get(self, job_id: str) -> Any:
        """State, trials done out of the budget, best score so far, and the model when done."""
        with services().store.session() as session:
            return repository.get_job(session, job_id)


@blp.route("/<string:job_id>/trials")
class Trials(MethodView):
    @blp.response(200, LeaderboardSchema)
    def get(self, job_id: str) -> Any:
        """The leaderboard: every trial's hyperparameters, score and state, best first."""
        with services().store.session() as session:
            job = repository.get_job(session, job_id)
            trials = repository.list_trials(session, job_id)
        reverse = job.objective_direction == "max"
        scored = sorted((t for t in trials if t.score is not None), key=lambda t: t.score or 0.0, reverse=reverse)
        unscored = [t for t in trials if t.score is None]
        return {"job_id": job.id, "objective": job.objective, "direction": job.objective_direction,
                "trials": scored + unscored}


@blp.route("/<string:job_id>/trials/<string:trial_id>/history")
class TrialHistory(MethodView):
    @blp.response(200, TrialHistorySchema)
    def get(self, job_id: str, trial_id: str) -> Any:
        """Per-epoch metrics of one trial; grows while the trial runs."""
        with services().store.session() as session:
            repository.get_job(session, job_id)
            trial = repository.get_trial(session, job_id, trial_id)
            epochs = repository.trial_history(session, job_id, trial_id)
        return {
            "job_id": job_id,
            "trial_id": trial_id,
            "state": trial.state,
            "epochs": [{"epoch": e.epoch, "execution": e.execution, **e.metrics} for e in epochs],
        }
