"""gunicorn's threaded worker, accepting a connection only while one of its request threads is free.

Every gunicorn process polls the one listening socket. The stock threaded worker (``gthread``)
accepts whenever its main loop wakes, busy or not, and a kept-alive connection then stays with
the process that accepted it. When a few clients open their connections at once, one process now
and then takes all of them: measured here with ``wrk -t2 -c8`` against 2 processes of 4 threads,
in 5 of 52 runs of 8 s every connection was in one process, which under Python's GIL serves
at most one core's worth, so throughput halved for as long as the connections lived (the sync
worker, which accepts only when idle, never did so). This worker stops accepting once as many
requests are in flight as it has threads, and starts again when one ends, so new connections go
to a process with a free thread; its kept-alive connections are still served as before.

It relies on three methods of gunicorn 27's ``ThreadWorker``, all called on the worker's main
thread: ``enqueue_req`` (a connection handed to the thread pool), ``finish_request`` (a request's
end, handed back) and ``set_accept_enabled`` (the listening sockets added to or removed from the
poller). ``tests/unit/test_gunicorn_worker.py`` pins them.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0  # connections handed to the thread pool and not yet handed back

    def has_free_thread(self) -> bool:
        return self.in_flight < self.cfg.threads

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.has_free_thread())

    def enqueue_req(self, conn: Any) -> None:
        self.in_flight += 1
        super().enqueue_req(conn)
        if not self.has_free_thread():
            super().set_accept_enabled(False)  # the main loop turns it back on when a request ends

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_flight -= 1
        super().finish_request(conn, fs)  # may hand the connection straight back (a read-ahead request)
