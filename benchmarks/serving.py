"""Serving speed over HTTP under the service's server (granian), beside the in-process floor; batch scoring.

1. Trains a wine MLP (and a penguins one) through the service as ``make run`` starts it
   (the space's default width and depth: 2 hidden layers, 128 then 64 units), and marks
   them deployed.
2. Restarts the API alone (``automl serve``: granian, 2 worker processes x 4 threads) and
   records how long ``/readyz`` takes to turn ready (deployed models loaded and warmed).
3. For 1-row and 1,000-row ``predict`` requests at several concurrencies, sends requests
   for ``--duration`` seconds from keep-alive connections (one thread each) and reports
   p50/p99 latency and requests/s; then 10,000 rows in one request. The client runs on the
   same cores as the server, as a co-located caller would.
4. The floor: the same compiled model call (``Predictor.call``) on the same rows in this
   process, median of many calls; the table gives HTTP p50 / floor.
5. Scores a 1,000,000-row penguins CSV (multipart, CSV answer) and samples the serving
   processes' resident memory meanwhile.
6. Throughput against the hand-written floor: ``wrk -t2 -c8`` one-row JSON predicts on a
   30-input model (breast cancer, the same width and depth), the service with its key check,
   preprocessing, rate limit and metrics on, against ``benchmarks/floor_app.py`` (Flask +
   gunicorn with 2 sync workers + ``predict_on_batch`` on a plain MLP); alternating runs, medians.
   Needs ``wrk`` (Debian: ``apt-get install wrk``).
7. How ``wrk``'s 8 keep-alive connections land on the service's 2 processes, counted in 20 short runs
   (a process holding all of them serves at most one core's worth under Python's GIL).
8. One-row predicts with a pause of 0.1, 1 and 5 s before each: a client that sends now and then.

    .venv/bin/python benchmarks/serving.py [--duration 10] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import psutil
import requests
from palmerpenguins import load_penguins
from sklearn.datasets import load_breast_cancer, load_wine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._docs import write_section
from benchmarks._service import LocalService, free_port, local_service

# The floor app's architecture (standardised inputs, 2 ReLU layers of 128 and 64 units), so that the
# comparison with it measures the serving path rather than the model: left to the portfolio, the
# trial would have a quantile transform and GELU, which cost more per call.
SPACE = {"num_layers": 2, "units": 128, "width_schedule": "funnel", "shrink": 0.5, "dropout": 0.1,
         "numeric_transform": "standard", "numeric_embedding": "none", "activation": "relu"}
TARGETS = {"p50_1row_ms": 3.0, "p99_1row_ms": 10.0, "rps_8_clients": 500.0, "ms_10k_rows": 300.0,
           "rps_vs_floor": 1.0}
WRK_ROUNDS = 3  # alternating runs of each server
SPREAD_STARTS = 20  # short wrk runs whose connections are counted per serving process
SPACING_S = ((0.1, 20), (1.0, 10), (5.0, 5))  # pause before each request (s), requests


def _records(frame: pd.DataFrame, n: int, seed: int = 0) -> list[dict[str, Any]]:
    sample = frame.sample(n, replace=len(frame) < n, random_state=seed)
    return [{str(k): (None if isinstance(v, float) and np.isnan(v) else (v.item() if hasattr(v, "item") else v))
             for k, v in row.items()} for row in sample.to_dict("records")]


def train(service: LocalService) -> dict[str, str]:
    models = {}
    for name, frame, target in (("wine", load_wine(as_frame=True).frame, "target"),
                                ("penguins", load_penguins(), "species"),
                                ("breast_cancer", load_breast_cancer(as_frame=True).frame, "target")):
        dataset = service.upload(frame, name)
        # refit: false, so that the served model is one network like the floor app's (a retrained model is
        # served beside its trial's own weights: two networks in one call).
        job = service.run_job(dataset_id=dataset["id"], target=target, tuner="random", max_trials=1,
                              max_epochs=30, seed=0, search_space=SPACE, refit=False)
        assert job["state"] == "succeeded", job
        models[name] = job["model_id"]
        deployed = service.http.post(f"{service.url}/api/v1/models/{job['model_id']}/deploy", timeout=120)
        deployed.raise_for_status()
    return models


class Load:
    """``clients`` threads, each with one keep-alive connection, posting ``body`` for ``duration`` s."""

    def __init__(self, url: str, path: str, body: bytes, clients: int, duration: float, key: str) -> None:
        self.host, self.port = urlparse(url).hostname or "127.0.0.1", urlparse(url).port or 80
        self.key = key
        self.path, self.body, self.clients, self.duration = path, body, clients, duration
        self.latencies: list[list[float]] = [[] for _ in range(clients)]
        self.errors = 0

    def _client(self, index: int, start: threading.Barrier) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {"Content-Type": "application/json", "Connection": "keep-alive",
                   "Authorization": f"Bearer {self.key}"}
        start.wait()
        end = time.perf_counter() + self.duration
        while (began := time.perf_counter()) < end:
            try:
                connection.request("POST", self.path, self.body, headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    self.errors += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
                continue
            self.latencies[index].append(time.perf_counter() - began)
        connection.close()

    def run(self) -> dict[str, float]:
        barrier = threading.Barrier(self.clients + 1)
        threads = [threading.Thread(target=self._client, args=(i, barrier)) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        barrier.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        samples = sorted(x for per in self.latencies for x in per)
        return {
            "requests": len(samples),
            "errors": self.errors,
            "p50_ms": 1000 * samples[len(samples) // 2],
            "p99_ms": 1000 * samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "rps": len(samples) / wall,
        }


def spaced(url: str, path: str, body: bytes, key: str) -> dict[str, dict[str, float]]:
    """One-row predicts on one keep-alive connection, each after a pause of ``SPACING_S``: what a client
    sending now and then waits (the loads above send their next request as soon as one is answered)."""
    connection = http.client.HTTPConnection(urlparse(url).hostname or "127.0.0.1", urlparse(url).port or 80,
                                            timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    out = {}
    for pause, repeats in SPACING_S:
        times = []
        for _ in range(repeats):
            time.sleep(pause)
            began = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            times.append(1000 * (time.perf_counter() - began))
        out[f"{pause:g}"] = {"requests": repeats, "p50_ms": statistics.median(times), "max_ms": max(times)}
    connection.close()
    return out


def floor_ms(model_dir: Path, rows: list[dict[str, Any]], repeats: int) -> float:
    """Median time of the compiled model call on ``rows`` in this process (inputs already converted)."""
    from automl.serving.adapters import json_instances
    from automl.serving.predictor import Predictor

    predictor = Predictor(model_dir)
    inputs = json_instances(predictor, rows).inputs
    for _ in range(10):
        predictor.call(inputs)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        predictor.call(inputs)
        times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


def wrk(url: str, body: str, key: str | None, duration: float) -> dict[str, float]:
    """``wrk -t2 -c8`` POSTing ``body`` for ``duration`` s: requests/s, p50 and failed requests."""
    handle, name = tempfile.mkstemp(suffix=".lua")
    os.close(handle)
    script = Path(name)
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n{auth}'
                      f"wrk.body = {json.dumps(body)}\n")
    try:
        out = subprocess.run(["wrk", "-t2", "-c8", f"-d{duration:.0f}s", "--latency", "-s", str(script), url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        script.unlink()
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    assert p50, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50_ms": float(p50.group(1)) * scale,
            "failed": (int(failed.group(1)) if failed else 0) + (sum(map(int, errors.groups())) if errors else 0)}


class FloorApp:
    """``benchmarks/floor_app.py`` under gunicorn with 2 sync workers, on ``columns``; with ``service_root``
    (the service's data folder), mounted at ``/floor`` inside the service's app and run by the service's
    server (``api.server``: 2 processes x 4 threads): the floor's route in a process like the service's own."""

    def __init__(self, columns: list[str], service_root: Path | None = None) -> None:
        self.port = free_port()
        env = {**os.environ, "FLOOR_COLUMNS": ",".join(columns), "TF_CPP_MIN_LOG_LEVEL": "2"}
        if service_root is None:
            self.url = f"http://127.0.0.1:{self.port}/predict"
            command = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{self.port}",
                       "benchmarks.floor_app:create_app()"]
        else:
            self.url = f"http://127.0.0.1:{self.port}/floor/predict"
            env.update(AUTOML_DATA_DIR=str(service_root), AUTOML_SKIP_MIGRATE="1")
            command = [sys.executable, "-m", "api.server", "--port", str(self.port),
                       "--app", "benchmarks.floor_app:within_service()"]
        self.process = subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parents[1],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, body: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if requests.post(self.url, data=body, headers={"Content-Type": "application/json"},
                                 timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError("the floor app did not answer")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)


def cancer_row() -> dict[str, float]:
    """The one breast-cancer row every ``wrk`` run predicts."""
    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    return {name: float(value) for name, value in frame.iloc[0].items()}


def versus_floor(service: LocalService, model_id: str, duration: float) -> dict[str, Any]:
    """Alternating ``wrk`` runs on the service, on the floor app, and on the floor app mounted inside a
    second service process (same rows, same machine)."""
    row = cancer_row()
    body = json.dumps({"instances": [row]})
    floors = {"floor": FloorApp(list(row)), "floor_in_service": FloorApp(list(row), service.root)}
    urls = {"ours": (f"{service.url}/api/v1/models/{model_id}/predict", service.key),
            **{name: (floor.url, None) for name, floor in floors.items()}}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    try:
        for floor in floors.values():
            floor.wait_ready(body)
        for url, key in urls.values():
            wrk(url, body, key, 2)  # warm each
        for _ in range(WRK_ROUNDS):
            for name, (url, key) in urls.items():
                runs[name].append(wrk(url, body, key, duration))
            print("versus floor", {name: r[-1] for name, r in runs.items()}, flush=True)
    finally:
        for floor in floors.values():
            floor.stop()
    return {name: {"rps": statistics.median(r["rps"] for r in results),
                   "p50_ms": statistics.median(r["p50_ms"] for r in results),
                   "failed": sum(r["failed"] for r in results), "runs": [r["rps"] for r in results]}
            for name, results in runs.items()}


def connection_spread(service: LocalService, model_id: str, starts: int = SPREAD_STARTS) -> dict[str, int]:
    """How ``wrk -t2 -c8``'s connections land on the service's processes: ``starts`` short runs, each one's
    established connections counted per serving process half-way through; how many runs had each split."""
    body = json.dumps({"instances": [cancer_row()]})
    url = f"{service.url}/api/v1/models/{model_id}/predict"
    port = urlparse(service.url).port
    workers = serving_processes(service.api.pid)
    splits: dict[str, int] = {}
    for _ in range(starts):
        run = threading.Thread(target=wrk, args=(url, body, service.key, 3))
        run.start()
        time.sleep(1.5)
        held = sorted(sum(1 for c in worker.net_connections("tcp")
                          if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port) for worker in workers)
        run.join()
        split = ":".join(map(str, reversed(held)))
        splits[split] = splits.get(split, 0) + 1
        time.sleep(1.0)  # the run's connections closed on both sides
    return dict(sorted(splits.items()))


def serving_processes(root_pid: int) -> list[psutil.Process]:
    """The server's worker processes (children of ``python -m api.server``) under ``automl serve``."""
    out = []
    for process in psutil.Process(root_pid).children(recursive=True):
        try:
            if "api.server" in " ".join(process.cmdline()) and process.ppid() != root_pid:
                out.append(process)
        except psutil.Error:
            continue
    return out


def serving_processes_rss(root_pid: int) -> dict[int, int]:
    """RSS of the server's worker processes under ``automl serve``."""
    out = {}
    for process in serving_processes(root_pid):
        try:
            out[process.pid] = process.memory_info().rss
        except psutil.Error:
            continue
    return out


class MemorySampler(threading.Thread):
    """Peak RSS of each serving process, sampled every 0.1 s."""

    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.peak: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                sample = serving_processes_rss(self.root_pid)
            except psutil.Error:
                continue
            for pid, rss in sample.items():
                self.peak[pid] = max(self.peak.get(pid, 0), rss)


def batch(service: LocalService, model_id: str, rows: int) -> dict[str, Any]:
    frame = load_penguins()
    big = pd.concat([frame] * (rows // len(frame) + 1), ignore_index=True).iloc[:rows]
    big.insert(0, "row_id", np.arange(rows))
    path = service.root / "big.csv"
    big.to_csv(path, index=False)
    before = serving_processes_rss(service.api.pid)
    sampler = MemorySampler(service.api.pid)
    sampler.start()
    began = time.perf_counter()
    with path.open("rb") as handle:
        response = service.http.post(f"{service.url}/api/v1/models/{model_id}/predict_proba",
                                 files={"file": ("big.csv", handle)}, data={"passthrough": "row_id"},
                                 headers={"Accept": "text/csv"}, timeout=1800, stream=True)
        answered = 0
        lines = 0
        for block in response.iter_content(1 << 20):
            answered += len(block)
            lines += block.count(b"\n")
    elapsed = time.perf_counter() - began
    sampler.stop.set()
    sampler.join()
    growth = max((sampler.peak.get(pid, 0) - rss for pid, rss in before.items()), default=0)
    return {"rows": rows, "status": response.status_code, "seconds": elapsed, "input_mb": path.stat().st_size / 2**20,
            "output_mb": answered / 2**20, "output_rows": lines - 1, "rss_before_mb": max(before.values()) / 2**20,
            "rss_growth_mb": growth / 2**20}


def trained_models(root: Path) -> dict[str, str]:
    """The benchmark's model ids in ``root``, trained there first unless an earlier run left them."""
    root.mkdir(parents=True, exist_ok=True)
    ids_file = root / "benchmark-models.json"
    if not ids_file.exists():
        with local_service(root) as service:
            ids_file.write_text(json.dumps(train(service)))
    return dict(json.loads(ids_file.read_text()))


def measure(duration: float, data_dir: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = data_dir or Path(tmp)
        models = trained_models(root)
        wine_dir = root / "models" / models["wine"]
        wine = load_wine(as_frame=True).frame.drop(columns=["target"])
        rows = {n: _records(wine, n) for n in (1, 1000, 10_000)}
        started = time.monotonic()
        # The predict rate limit (1,000 a second per key and process by default) is raised, not removed: it is
        # still counted on every request, but a fast machine's load from one key is not refused.
        with local_service(root, env={"AUTOML_RATE_LIMIT_PREDICT": "100000/second"}, api_workers=2,
                           with_worker=False) as service:
            service.wait_ready("/readyz")
            ready_s = time.monotonic() - started
            readiness = requests.get(f"{service.url}/readyz", timeout=10).json()
            path = f"/api/v1/models/{models['wine']}/predict"
            loads = []
            for n, clients in ((1, 1), (1, 4), (1, 8), (1000, 1), (1000, 8)):
                body = json.dumps({"instances": rows[n]}).encode()
                Load(service.url, path, body, clients, 2, service.key).run()  # warm connections and threads
                result = Load(service.url, path, body, clients, duration, service.key).run()
                loads.append({"rows": n, "clients": clients, **result})
                print(loads[-1], flush=True)
            paused = spaced(service.url, path, json.dumps({"instances": rows[1]}).encode(), service.key)
            print("spaced", paused, flush=True)
            big_body = json.dumps({"instances": rows[10_000]}).encode()
            big = Load(service.url, path, big_body, 1, duration, service.key).run()
            print("10k rows", big, flush=True)
            floor_run = versus_floor(service, models["breast_cancer"], duration)
            spread = connection_spread(service, models["breast_cancer"])
            print("connection spread", spread, flush=True)
            scored = batch(service, models["penguins"], 1_000_000)
            print("batch", scored, flush=True)
        floors = {n: floor_ms(wine_dir, rows[n], 300 if n == 1 else 30) for n in (1, 1000, 10_000)}
        print("floors", floors, flush=True)
    return {"ready_s": ready_s, "readiness": readiness, "loads": loads, "big": big, "floors": floors, "spaced": paused,
            "batch": scored, "versus_floor": floor_run, "spread": spread, "cores": os.cpu_count()}


def report(result: dict[str, Any]) -> str:
    floors = result["floors"]
    lines = [
        "### Serving latency and throughput (`benchmarks/serving.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {result['cores']} CPU cores: `automl serve` (granian, 2 worker "
        "processes × 4 threads), wine MLP (13 numeric inputs; 2 hidden layers, 128 and 64 units), JSON "
        "`POST /api/v1/models/{id}/predict` over keep-alive connections from a client on the same cores. Floor: "
        "the compiled model call on the same rows in one process (no HTTP, no JSON, inputs already converted).",
        "",
        "| rows per request | clients | requests | p50 ms | p99 ms | requests/s | rows/s | p50 ÷ floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for load in result["loads"]:
        lines.append(
            f"| {load['rows']} | {load['clients']} | {load['requests']} | {load['p50_ms']:.2f} | {load['p99_ms']:.2f} "
            f"| {load['rps']:.0f} | {load['rps'] * load['rows']:.0f} | {load['p50_ms'] / floors[load['rows']]:.1f} |"
        )
    big = result["big"]
    lines.append(f"| 10000 | 1 | {big['requests']} | {big['p50_ms']:.1f} | {big['p99_ms']:.1f} | {big['rps']:.1f} "
                 f"| {big['rps'] * 10000:.0f} | {big['p50_ms'] / floors[10_000]:.1f} |")
    errors = sum(load["errors"] for load in result["loads"]) + big["errors"]
    one = next(x for x in result["loads"] if x["rows"] == 1 and x["clients"] == 1)
    eight = next(x for x in result["loads"] if x["rows"] == 1 and x["clients"] == 8)
    checks = [
        ("one-row p50 ≤ 3 ms", one["p50_ms"], TARGETS["p50_1row_ms"], one["p50_ms"] <= TARGETS["p50_1row_ms"]),
        ("one-row p99 ≤ 10 ms", one["p99_ms"], TARGETS["p99_1row_ms"], one["p99_ms"] <= TARGETS["p99_1row_ms"]),
        ("≥ 500 requests/s with 8 clients", eight["rps"], TARGETS["rps_8_clients"],
         eight["rps"] >= TARGETS["rps_8_clients"]),
        ("10,000 rows in one request ≤ 300 ms (p50)", big["p50_ms"], TARGETS["ms_10k_rows"],
         big["p50_ms"] <= TARGETS["ms_10k_rows"]),
    ]
    versus = result["versus_floor"]
    inside = versus["floor_in_service"]
    ratio = versus["ours"]["rps"] / versus["floor"]["rps"]
    checks.append(("one-row requests/s ÷ the hand-written floor app's ≥ 1.0 (`wrk -t2 -c8`)", ratio,
                   TARGETS["rps_vs_floor"], ratio >= TARGETS["rps_vs_floor"]))
    lines += ["", f"Floor (median compiled call): 1 row {floors[1]:.3f} ms, 1,000 rows {floors[1000]:.2f} ms, "
                  f"10,000 rows {floors[10_000]:.1f} ms. Failed requests: {errors}.", "", "Targets:"]
    lines += [f"- {name}: {value:.2f} — {'met' if ok else 'NOT MET'}" for name, value, _, ok in checks]
    lines += [
        "",
        f"Against the hand-written floor (`benchmarks/floor_app.py`: Flask + gunicorn, 2 sync workers, "
        f"`predict_on_batch` on a plain 30-input MLP of the same width and depth), `wrk -t2 -c8` one-row JSON "
        f"predicts, {WRK_ROUNDS} alternating runs each, medians: the service (breast-cancer model, 30 inputs, key "
        f"check, preprocessing layers, rate limit and metrics on) **{versus['ours']['rps']:.0f} requests/s** "
        f"(p50 {versus['ours']['p50_ms']:.2f} ms; runs {', '.join(f'{r:.0f}' for r in versus['ours']['runs'])}), "
        f"the floor app **{versus['floor']['rps']:.0f}** (p50 {versus['floor']['p50_ms']:.2f} ms; runs "
        f"{', '.join(f'{r:.0f}' for r in versus['floor']['runs'])}): **{ratio:.2f}×**. The same floor app mounted "
        f"at `/floor` inside a second service process (`floor_app.within_service()`, the service's server "
        f"and settings: granian, 2 processes × 4 threads) **{inside['rps']:.0f}** (runs "
        f"{', '.join(f'{r:.0f}' for r in inside['runs'])}): the service's route at "
        f"**{versus['ours']['rps'] / inside['rps']:.2f}×** the floor's route in a process like its own. Failed "
        f"requests: {versus['ours']['failed']}, {versus['floor']['failed']} and {inside['failed']}.",
        "",
        f"Connections per serving process: in {sum(result['spread'].values())} short "
        f"`wrk -t2 -c8` runs, the 8 connections split "
        + ", ".join(f"{split} in {count}" for split, count in result["spread"].items())
        + " (the busier process first).",
    ]
    lines += ["", "One-row predicts with a pause before each, on one keep-alive connection (a client that sends now "
              "and then; the loads above send back to back):", "",
              "| pause before each request | requests | p50 ms | max ms |", "|---|---|---|---|"]
    lines += [f"| {pause} s | {row['requests']} | {row['p50_ms']:.2f} | {row['max_ms']:.2f} |"
              for pause, row in result["spaced"].items()]
    scored = result["batch"]
    lines += [
        "",
        f"Readiness: `/readyz` answered ready {result['ready_s']:.1f} s after `automl serve` started, with "
        f"{result['readiness']['loaded']} deployed models loaded and warmed in the answering process.",
        "",
        f"Batch scoring: {scored['rows']:,} penguins rows ({scored['input_mb']:.0f} MB CSV, categorical and missing "
        f"values, an id passed through) → `predict_proba` as CSV ({scored['output_mb']:.0f} MB, "
        f"{scored['output_rows']:,} rows, HTTP {scored['status']}) in {scored['seconds']:.1f} s "
        f"({scored['rows'] / scored['seconds']:,.0f} rows/s); the serving process grew by at most "
        f"{scored['rss_growth_mb']:.0f} MiB over its {scored['rss_before_mb']:.0f} MiB (chunks of 50,000 rows).",
    ]
    return "\n".join(lines)


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/serving.py needs wrk for the comparison with the floor app: apt-get install wrk")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load level")
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse trained models from this folder")
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (docs/benchmarks.md)")
    args = parser.parse_args()
    block = report(measure(args.duration, args.data_dir))
    print(block)
    if args.write:
        write_section(args.write, "serving", "Serving", block)


if __name__ == "__main__":
    main()
