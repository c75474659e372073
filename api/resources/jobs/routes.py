"""``/api/v1/jobs``: submit searches, follow them, read the leaderboard and histories."""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

from flask import Response, jsonify, request, send_file, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import holds_slot, rate_limited, scope
from api.plots import learning_curves
from api.resources.common import PNG_ANSWER, PageArgs, PlotArgs
from api.resources.jobs.schemas import (
    CreateHeadersSchema,
    JobCreateSchema,
    JobImportanceSchema,
    JobSchema,
    LeaderboardSchema,
    TrialHistorySchema,
)
from api.services import services
from automl.errors import InvalidJobRequest, NotReady
from automl.jobs import JobRequest, cancel_job, progress, tensorboard_archive
from automl.store import Store, searches
from automl.store.records import JobRecord, JobState
from automl.usecases.deletion import delete_job
from automl.usecases.jobs import submit_job
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
            jobs = searches.list_jobs(session, page["limit"], page["offset"], scope())
            return [progress(session, job) for job in jobs]

    @rate_limited("jobs")
    @blp.arguments(JobCreateSchema)
    @blp.arguments(CreateHeadersSchema, location="headers")
    @blp.response(202, JobSchema)
    def post(self, body: dict[str, Any], headers: dict[str, Any]) -> Any:
        """Start a Keras Tuner search on a dataset; answers at once with the queued job.

        With an ``Idempotency-Key`` header, a repeated request (a client retrying after a
        timeout) gets the job the first one created, not a second search."""
        svc = services()
        job, replayed = submit_job(svc.store, svc.settings, JobRequest(**body), scope(),
                                   partial(send_advance, svc.celery), headers.get("idempotency_key"))
        return (job, 202, {"Idempotent-Replayed": "true"}) if replayed else job


@blp.route("/<string:job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    def get(self, job_id: str) -> Any:
        """State, trials done out of the budget, running trials and their epoch, best score so far,
        elapsed time, an estimate of the time left, and the model when done."""
        with services().store.session() as session:
            return progress(session, searches.get_job(session, job_id, scope=scope()))

    @blp.response(204)
    @blp.alt_response(202, schema=JobSchema, description="The job was running: it is being cancelled, and is "
                                                          "deleted once it stops (delete_requested).")
    def delete(self, job_id: str) -> Any:
        """Delete the job, its trials, histories, events, TensorBoard logs and tuner files, and its models. A
        queued job is cancelled and deleted at once (204); a running one is cancelled, and deleted by the worker
        as soon as its trials stop (202). 409 while one of its models is deployed or aliased."""
        svc = services()
        if delete_job(svc.store, svc.settings, svc.models, job_id, scope()):
            return None
        with svc.store.session() as session:
            answer = jsonify(JobSchema().dump(progress(session, searches.get_job(session, job_id, scope=scope()))))
        answer.status_code = 202
        return answer


@blp.route("/<string:job_id>/cancel")
class Cancel(MethodView):
    @blp.response(202, JobSchema)
    def post(self, job_id: str) -> Any:
        """Stop the job: at once if queued, else at its trials' next epoch boundary. Finished trials,
        their histories and the best model so far are kept (the job ends ``cancelled``)."""
        with services().store.session() as session:
            job = cancel_job(session, job_id, scope())
            return progress(session, job)


@blp.route("/<string:job_id>/events")
class Events(MethodView):
    @holds_slot("stream")
    @blp.doc(
        parameters=[{"in": "header", "name": "Last-Event-ID", "schema": {"type": "integer"}, "required": False,
                     "description": "Resume after this event (sent automatically by EventSource)."},
                    {"in": "query", "name": "after", "schema": {"type": "integer"}, "required": False,
                     "description": "The same as Last-Event-ID, for clients that cannot set headers."}],
        responses={"200": {"description": "Server-Sent Events: trial_started, epoch_ended, trial_ended, "
                                          "trial_interrupted (its reason: worker shutdown, lease lost or "
                                          "worker lost; the trial runs again from epoch 0, so the epochs "
                                          "since its trial_started are void), best_model (a new best model "
                                          "so far), "
                                          "cancel_requested, job_ended. Each event's id resumes the stream; it "
                                          "ends after job_ended.",
                           "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    )
    def get(self, job_id: str) -> Any:
        """Live progress as Server-Sent Events, from the start of the job (or after Last-Event-ID)."""
        svc = services()
        with svc.store.session() as session:
            searches.get_job(session, job_id, scope=scope())
        raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
        try:
            after = max(int(raw), 0)
        except ValueError:
            raise InvalidJobRequest("Last-Event-ID must be an event id (an integer).",
                                    {"Last-Event-ID": ["not an integer"]}) from None
        stream = _events(svc.store, job_id, after, svc.settings.events_poll_s, svc.settings.events_stream_max_s)
        return Response(stream_with_context(stream), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


KEEPALIVE_S = 15.0


def _events(store: Store, job_id: str, after: int, poll_s: float, max_s: float) -> Iterator[str]:
    started = last_sent = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        with store.session() as session:
            # The state first: a job seen finished has its job_ended event committed already.
            job = session.get(JobRecord, job_id)
            finished = job is None or JobState(job.state).finished
            rows = searches.events_after(session, job_id, after)
        for row in rows:
            after = row.id
            data = {"job_id": job_id, "at": row.created_at.isoformat(), **row.data}
            yield f"id: {row.id}\nevent: {row.kind}\ndata: {json.dumps(data, default=str)}\n\n"
            last_sent = time.monotonic()
            if row.kind == "job_ended":
                return
        if not rows and finished:
            return
        now = time.monotonic()
        if now - started > max_s:
            return
        if now - last_sent > KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = now
        time.sleep(poll_s)


@blp.route("/<string:job_id>/trials")
class Trials(MethodView):
    @blp.response(200, LeaderboardSchema)
    def get(self, job_id: str) -> Any:
        """The leaderboard: every trial's hyperparameters, score and state, best first."""
        with services().store.session() as session:
            job = searches.get_job(session, job_id, scope=scope())
            trials = searches.leaderboard(session, job)
        return {"job_id": job.id, "objective": job.objective, "direction": job.objective_direction,
                "trials": trials}


@blp.route("/<string:job_id>/importance")
class HyperparameterImportance(MethodView):
    @blp.response(200, JobImportanceSchema)
    def get(self, job_id: str) -> Any:
        """Which hyperparameters explained the trials' scores: each one's share of the score's variance (the
        main effects of functional ANOVA, on a random forest fitted to the completed trials). Grows with the
        search; needs 4 completed trials."""
        from automl.insight.hyperparameters import MIN_TRIALS, hyperparameter_importance

        with services().store.session() as session:
            job = searches.get_job(session, job_id, scope=scope())
            trials = [t for t in searches.list_trials(session, job_id) if t.state == "completed"
                      and t.score is not None and math.isfinite(t.score)]
        if len(trials) < MIN_TRIALS:
            raise NotReady(f"Job '{job.id}' has {len(trials)} completed trial(s); hyperparameter importance needs at "
                           f"least {MIN_TRIALS}. Ask again as the search goes on.")
        found = hyperparameter_importance([t.hyperparameters or {} for t in trials],
                                          [float(t.score or 0.0) for t in trials], seed=job.seed)
        return {"job_id": job.id, "objective": job.objective, "direction": job.objective_direction,
                "trials": len(trials), "hyperparameters": found,
                "method": "functional ANOVA main effects on a random-forest surrogate of the score"}


def _trial_history(job_id: str, trial_id: str) -> dict[str, Any]:
    with services().store.session() as session:
        searches.get_job(session, job_id, scope=scope())
        trial = searches.get_trial(session, job_id, trial_id)
        epochs = searches.trial_history(session, job_id, trial_id)
    return {
        "job_id": job_id,
        "trial_id": trial_id,
        "state": trial.state,
        "epochs": [{"epoch": e.epoch, "execution": e.execution, **e.metrics} for e in epochs],
    }


@blp.route("/<string:job_id>/trials/<string:trial_id>/history")
class TrialHistory(MethodView):
    @blp.response(200, TrialHistorySchema)
    def get(self, job_id: str, trial_id: str) -> Any:
        """Per-epoch metrics of one trial; grows while the trial runs."""
        return _trial_history(job_id, trial_id)


@blp.route("/<string:job_id>/tensorboard.zip")
class TensorBoardLogs(MethodView):
    @holds_slot("download")
    @blp.response(200, description="A zip of tensorboard/<run>/{train,validation}/events... (one run per trial, "
                                   "and final_refit): unzip and run `tensorboard --logdir tensorboard`.",
                  content_type="application/zip")
    def get(self, job_id: str) -> Any:
        """The job's TensorBoard logs so far: loss, metrics and learning rate per epoch for every trial."""
        svc = services()
        with svc.store.session() as session:
            searches.get_job(session, job_id, scope=scope())
        handle = tempfile.TemporaryFile(dir=svc.settings.tmp_dir)  # noqa: SIM115 (send_file closes it: removed)
        try:
            tensorboard_archive(svc.settings, job_id, handle)
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        return send_file(handle, mimetype="application/zip", as_attachment=True,
                         download_name=f"job-{job_id}-tensorboard.zip")


@blp.route("/<string:job_id>/trials/<string:trial_id>/history.png")
class TrialHistoryPlot(MethodView):
    @blp.arguments(PlotArgs, location="query")
    @blp.response(200, **PNG_ANSWER)
    def get(self, args: dict[str, Any], job_id: str, trial_id: str) -> Any:
        """The trial's learning curves as a PNG (loss and metrics per epoch, train vs validation)."""
        history = _trial_history(job_id, trial_id)
        png = learning_curves(history["epochs"], f"job {job_id} · trial {trial_id} ({history['state']})",
                              args["width"], args["height"])
        return Response(png, mimetype="image/png", headers={"Cache-Control": "no-cache"})
