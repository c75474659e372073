"""Use cases: what one request asks of the service, as plain functions that know no Flask.

A view validates its input, calls one use case and shapes the answer (as Flask's tutorial and
MLflow's scoring server do). Work on other processes is passed in as a callable (``Queue``), so
``automl`` never imports ``tasks``.

* ``datasets.register_dataset``: ingest an upload and record it, leaving nothing behind on failure.
* ``jobs.submit_job``: validate, record, queue every lane, replay an ``Idempotency-Key``.
* ``models.ModelResolver``: a model id or alias the caller may see -> its loaded ``Predictor``;
  ``models.deploy`` / ``undeploy`` / ``set_alias``.
"""
