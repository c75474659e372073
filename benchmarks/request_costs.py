"""Where a one-row prediction request's time goes in one serving process, beside the floor app.

Calls both apps' WSGI callables directly (no HTTP, no test client) with the same one-row
breast-cancer JSON predict that ``benchmarks/serving.py`` sends with ``wrk``:

1. Per-request process CPU of the service (key check, rate limit, body schema, preprocessing,
   input warnings, drift counting, metrics and the request log line all on) and of the floor app
   (``benchmarks/floor_app.py``), in alternating blocks, medians.
2. For the service, the wall time spent inside each step of a request: every step is wrapped with a
   timer, and a step's time includes the steps it calls (the model call is inside ``predict``, the
   rate limit and the key lookup inside ``authenticate``, the log line inside ``_after``).
3. With ``--hot``, each of the cheaper steps alone in a loop of its own: steps cost several times
   more inside a request, after the rest of the request has run, than in a loop.

The rate limit is raised for this process so that the loop is not refused; it is still counted on
every request. Trains the serving benchmark's models first unless ``--data-dir`` already holds them.

    .venv/bin/python -m benchmarks.request_costs [--data-dir DIR] [--requests 5000] [--hot]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sklearn.datasets import load_breast_cancer
from werkzeug.test import EnvironBuilder

from benchmarks.serving import trained_models

BLOCKS = 7
SETTLE_S = 0.6  # after a block: the drift thread's last round (every 0.2 s) done


def _caller(app: Any, path: str, body: bytes, headers: dict[str, str]) -> Callable[[], None]:
    """One POST of ``body`` through ``app``'s WSGI callable, its answer read and closed."""
    environ = EnvironBuilder(path=path, method="POST", data=body, headers=list(headers.items()),
                             content_type="application/json").get_environ()

    def call() -> None:
        request = dict(environ)
        request["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []
        answer = app(request, lambda code, _headers, _exc=None: status.append(code))
        b"".join(answer)
        getattr(answer, "close", lambda: None)()
        if not status[0].startswith("200"):
            raise RuntimeError(f"{path} answered {status[0]}")

    return call


def _cpu_per_request(call: Callable[[], None], n: int, settle_s: float = 0.0) -> float:
    """Process CPU per call of ``n`` calls, counted until ``settle_s`` after the last: the service's drift
    thread counts the requests' inputs every 0.2 s, and that work belongs to the block that caused it."""
    began = time.process_time()
    for _ in range(n):
        call()
    time.sleep(settle_s)
    return (time.process_time() - began) / n * 1e6


class Timers:
    """Wall time spent inside wrapped functions, per label."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - began

        return timed

    def patch(self, owner: Any, name: str, label: str | None = None) -> None:
        setattr(owner, name, self.wrap(getattr(owner, name), label or name))


def _instrument(app: Any, timers: Timers) -> None:
    """Timers around the request's steps (by their names in the code: a renamed step fails here)."""
    from api import metrics
    from automl.serving.checks import InputProfile
    from automl.serving.compiled import CompiledCall
    from automl.serving.drift import DriftMonitor
    from automl.serving.predictor import Predictor

    for hooks, kind in ((app.before_request_funcs, "before"), (app.after_request_funcs, "after")):
        for blueprint, functions in hooks.items():
            hooks[blueprint] = [timers.wrap(f, f"hook {kind}: {f.__name__}") for f in functions]
    routes = importlib.import_module("api.resources.models.routes")
    for name in ("_json_body", "json_instances", "predictor_for"):
        timers.patch(routes, name)
    services = app.extensions["automl"]
    timers.patch(type(services.limits), "hit", "rate limit (in authenticate)")
    timers.patch(type(services.keys), "caller", "key lookup (in authenticate)")
    timers.patch(metrics.log, "info", "request log line (in _after)")
    timers.patch(Predictor, "predict", "predict (labels and model call)")
    timers.patch(CompiledCall, "__call__", "model call (in predict)")
    timers.patch(InputProfile, "warnings", "input warnings")
    timers.patch(DriftMonitor, "observe", "drift hand-off")


def _hot(app: Any, row: dict[str, float], model_id: str) -> dict[str, float]:
    """Some steps alone, each in a loop of its own (µs per call, median of blocks)."""
    from api import metrics
    from automl.serving.adapters import json_instances

    predictor = app.extensions["automl"].models.peek(model_id)  # loaded by the requests before
    batch = json_instances(predictor, [row])
    steps: dict[str, Callable[[], Any]] = {
        "json_instances": lambda: json_instances(predictor, [row]),
        "model call": lambda: predictor.call(batch.inputs),
        "predict": lambda: predictor.predict(batch),
        "input warnings": lambda: predictor.input_profile.warnings(batch.inputs, 1),
        "request log line": lambda: metrics.log.info("%s %s %s %.1f ms", "POST", "/api/v1/models/x/predict",
                                                     200, 1.0, extra={"status": 200}),
    }
    out = {}
    for name, step in steps.items():
        for _ in range(200):
            step()
        out[name] = statistics.median(_cpu_per_request(step, 1000) for _ in range(BLOCKS))
    return out


def measure(data_dir: Path, requests: int, hot: bool) -> dict[str, Any]:
    model_id = trained_models(data_dir)["breast_cancer"]
    os.environ.update(AUTOML_DATA_DIR=str(data_dir), AUTOML_RATE_LIMIT_PREDICT="1000000/second",
                      AUTOML_LOG_LEVEL="INFO")
    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    row = {name: float(value) for name, value in frame.iloc[0].items()}
    body = json.dumps({"instances": [row]}).encode()
    key = (data_dir / "admin-key").read_text().strip()

    import logging

    from api.app import create_app
    from benchmarks.floor_app import create_app as floor_app

    app = create_app()
    for handler in logging.getLogger().handlers:  # the log line is written, to nowhere
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (kept open for the process)
    os.environ["FLOOR_COLUMNS"] = ",".join(row)
    ours = _caller(app, f"/api/v1/models/{model_id}/predict", body, {"Authorization": f"Bearer {key}"})
    floor = _caller(floor_app(), "/predict", body, {})
    for call in (ours, floor):
        for _ in range(500):
            call()
    time.sleep(1.0)  # the compile threads and the drift thread's rounds done
    cpu: dict[str, list[float]] = {"ours": [], "floor": []}
    block = max(100, requests // BLOCKS)
    for _ in range(BLOCKS):
        cpu["ours"].append(_cpu_per_request(ours, block, SETTLE_S))
        cpu["floor"].append(_cpu_per_request(floor, block, SETTLE_S))
    timers = Timers()
    _instrument(app, timers)
    began = time.perf_counter()
    for _ in range(requests):
        ours()
    wall = (time.perf_counter() - began) / requests * 1e6
    steps = {label: spent / requests * 1e6 for label, spent in timers.spent.items()}
    return {"cpu_us": {name: statistics.median(v) for name, v in cpu.items()}, "cpu_blocks": cpu,
            "instrumented_wall_us": wall, "steps_us": steps,
            "hot_us": _hot(app, row, model_id) if hot else None}


def report(result: dict[str, Any]) -> str:
    cpu = result["cpu_us"]
    lines = [f"per request, process CPU (median of {BLOCKS} alternating blocks): service {cpu['ours']:.0f} µs, "
             f"floor app {cpu['floor']:.0f} µs: the service at {cpu['floor'] / cpu['ours']:.2f}x the floor's rate",
             f"instrumented service requests: {result['instrumented_wall_us']:.0f} µs wall each; inside them:"]
    for label, spent in sorted(result["steps_us"].items(), key=lambda item: -item[1]):
        lines.append(f"  {label:40s} {spent:7.1f} µs")
    if result["hot_us"]:
        lines.append("alone in a loop (process CPU per call):")
        for label, spent in result["hot_us"].items():
            lines.append(f"  {label:40s} {spent:7.1f} µs")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse trained models from this folder")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--hot", action="store_true", help="also time some steps alone in a loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.data_dir or Path(tmp), args.requests, args.hot)
    print(report(result))


if __name__ == "__main__":
    main()
