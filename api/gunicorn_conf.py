"""gunicorn settings for the API: ``gunicorn -c python:api.gunicorn_conf api.wsgi:app``.

Used by ``automl serve`` and by the Kubernetes manifests alike. Each worker process keeps its
own Prometheus counters; they are shared through files in ``PROMETHEUS_MULTIPROC_DIR`` (made
fresh here, before the workers start) and summed when ``/metrics`` is scraped.
"""

import os
import shutil
import tempfile
from typing import Any

wsgi_app = "api.wsgi:app"
bind = os.environ.get("AUTOML_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("AUTOML_API_WORKERS", "2"))
worker_class = "api.gunicorn_worker.BalancedThreadWorker"  # gthread, accepting only with a free thread
threads = int(os.environ.get("AUTOML_API_THREADS", "4"))
timeout = 120  # a batch-scoring request of a large file runs this long at most
graceful_timeout = 30
keepalive = 5
accesslog = None  # the app logs every request itself, with its request id (and as JSON when asked)
control_socket_disable = True  # not used; it would need a writable home directory in the container


def post_worker_init(worker: Any) -> None:
    """``AUTOML_PROBE_PORT``: this process also answers /healthz and /readyz on that port, from a thread of
    its own, so probes answer while every request thread is busy (``api.probes``)."""
    port = os.environ.get("AUTOML_PROBE_PORT")
    if port:
        from api.probes import start_probe_listener

        host = worker.cfg.bind[0].rsplit(":", 1)[0].strip("[]") or "0.0.0.0"  # where the API listens
        start_probe_listener(worker.wsgi.extensions["automl"], host, int(port))


def on_starting(server: Any) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="automl-metrics-")
    shutil.rmtree(folder, ignore_errors=True)  # counters from an earlier run would be summed in
    os.makedirs(folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def on_exit(server: Any) -> None:
    shutil.rmtree(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""), ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
