"""``Client``: the service's REST API from Python, with nothing heavier than ``requests``.

    from automl.client import Client
    client = Client("http://automl.internal:8000", api_key="amk_...")
    dataset = client.upload("churn.csv")
    job = client.submit(dataset["id"], target="churned", max_trials=20)
    job = client.wait(job["id"], on_update=print)
    client.leaderboard(job["id"])[0]["hyperparameters"]
    client.predict_proba(job["model_id"], [{"age": 41, "plan": "pro"}])

Answers are the API's JSON as dicts and lists (the OpenAPI document at ``/api/v1/openapi.json``
describes every field). Failures raise the typed errors of :mod:`automl.client.errors`.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from automl.client.errors import ConnectionFailed, JobFailed, WaitTimeout, error_from_response

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "AUTOML_URL"
KEY_ENV = "AUTOML_API_KEY"
FINISHED = ("succeeded", "failed", "cancelled")
_CHUNK = 1 << 20


def default_key_file() -> Path:
    """Where ``make run`` (the embedded mode) keeps its admin key: ``$AUTOML_DATA_DIR/admin-key``."""
    return Path(os.environ.get("AUTOML_DATA_DIR", "var")) / "admin-key"


class Client:
    """One service, one key. ``url`` and ``api_key`` default to ``AUTOML_URL`` and ``AUTOML_API_KEY``;
    without a key, the embedded mode's ``var/admin-key`` is used when it exists."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3) -> None:
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.api_key = api_key or os.environ.get(KEY_ENV) or _read_key(default_key_file())
        self.timeout = timeout
        self.http = requests.Session()
        # Connection failures are retried for every method (nothing reached the server); 502-504
        # only for reads. Job submissions carry an Idempotency-Key, so the server never starts two.
        retry = Retry(total=retries, connect=retries, read=0, status=retries, backoff_factor=0.5,
                      status_forcelist=(502, 503, 504), raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.http.headers["User-Agent"] = "automl-client"
        if self.api_key:
            self.http.headers["Authorization"] = f"Bearer {self.api_key}"

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- datasets ---------------------------------------------------------------------------

    def upload(self, path: str | os.PathLike[str], name: str | None = None) -> dict[str, Any]:
        """Upload a CSV, Parquet or image-zip file; answers the dataset with its inferred schema."""
        path = Path(path)
        with path.open("rb") as handle:
            return self._json("POST", "/datasets", files={"file": (name or path.name, handle)})

    def datasets(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self._json("GET", "/datasets", params={"limit": limit, "offset": offset})

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/datasets/{dataset_id}")

    # -- jobs -------------------------------------------------------------------------------

    def submit(self, dataset_id: str, target: str | list[str] | None = None, **options: Any) -> dict[str, Any]:
        """Start a search (``max_trials``, ``max_epochs``, ``tuner``, ``time_budget_s``, ``search_space``,
        ... as in ``POST /api/v1/jobs``); answers the queued job."""
        body = {"dataset_id": dataset_id, **({"target": target} if target is not None else {}), **options}
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        return self._json("POST", "/jobs", json=body, headers=headers, retry_post=True)

    def jobs(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self._json("GET", "/jobs", params={"limit": limit, "offset": offset})

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{job_id}/cancel")

    def wait(self, job_id: str, timeout: float | None = None, poll_s: float = 1.0,
             on_update: Callable[[dict[str, Any]], None] | None = None, raise_on_failure: bool = True,
             ) -> dict[str, Any]:
        """Poll the job until it has finished; ``on_update(job)`` sees every poll. A failed or
        cancelled job raises :class:`JobFailed` (unless ``raise_on_failure=False``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["state"] in FINISHED:
                if raise_on_failure and job["state"] != "succeeded":
                    raise JobFailed(job)
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(job, timeout or 0.0)
            time.sleep(poll_s)

    def leaderboard(self, job_id: str) -> list[dict[str, Any]]:
        """The job's trials, best score first, with hyperparameters, score, epochs and state."""
        return self._json("GET", f"/jobs/{job_id}/trials")["trials"]

    def job_importance(self, job_id: str) -> dict[str, Any]:
        """Which hyperparameters explained the job's trial scores (``hyperparameters``: name and share of the
        score's variance, most important first); needs 4 completed trials."""
        return self._json("GET", f"/jobs/{job_id}/importance")

    def history(self, job_id: str, trial_id: str) -> list[dict[str, Any]]:
        """One trial's per-epoch metrics: ``[{"epoch": 0, "loss": ..., "val_loss": ...}, ...]``."""
        return self._json("GET", f"/jobs/{job_id}/trials/{trial_id}/history")["epochs"]

    # -- models -----------------------------------------------------------------------------

    def models(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self._json("GET", "/models", params={"limit": limit, "offset": offset})

    def model(self, model: str) -> dict[str, Any]:
        """A model by id or alias: task, classes, input schema, hyperparameters, test metrics."""
        return self._json("GET", f"/models/{model}")

    def model_history(self, model: str) -> list[dict[str, Any]]:
        """The final model's per-epoch metrics."""
        return self._json("GET", f"/models/{model}/history")["epochs"]

    def importance(self, model: str) -> dict[str, Any]:
        """Which input columns the model relies on: permutation importance on the held-out test rows
        (``metric``, ``baseline``, ``columns``: name, mean drop, std; most important first)."""
        return self._json("GET", f"/models/{model}/importance")

    def drift(self, model: str, hours: int = 24) -> dict[str, Any]:
        """Whether the inputs served in the last ``hours`` still look like the training rows: per column the
        population stability index (``psi``, above ``threshold``: drifted), out-of-range and unseen shares."""
        return self._json("GET", f"/models/{model}/drift", params={"hours": hours})

    def profile(self, model: str) -> list[dict[str, Any]]:
        """What the model saw in training, per input column (quantiles, category shares, missing share)."""
        return self._json("GET", f"/models/{model}/profile")["columns"]

    def predict(self, model: str, instances: Any, mc_samples: int | None = None,
                explain: bool = False) -> dict[str, Any]:
        """Predictions for rows (a list of dicts, or anything with ``to_dict("records")`` such as a
        DataFrame); ``mc_samples`` adds Monte Carlo dropout's ``std``; ``explain`` adds each row's
        ``explanations`` (every column's effect on the output)."""
        return self._json("POST", f"/models/{model}/predict", json=_instances(instances, mc_samples, explain))

    def predict_proba(self, model: str, instances: Any, mc_samples: int | None = None,
                      explain: bool = False) -> dict[str, Any]:
        """Class probabilities (``classes`` names the columns of ``probabilities``)."""
        return self._json("POST", f"/models/{model}/predict_proba", json=_instances(instances, mc_samples, explain))

    def predict_file(self, model: str, path: str | os.PathLike[str], out: str | os.PathLike[str] | IO[bytes],
                     proba: bool = False, passthrough: Iterable[str] = (), explain: bool = False) -> None:
        """Score a CSV or Parquet file of any size on the server; the CSV answer streams into ``out``
        (a path or a binary file), with the ``passthrough`` columns (e.g. an id) copied in, and with
        ``explain`` each row's explanation as ``explains``, ``explained_value`` and ``attribution:<column>``."""
        path = Path(path)
        route = "predict_proba" if proba else "predict"
        data: dict[str, str] = {"passthrough": ",".join(passthrough)} if passthrough else {}
        if explain:
            data["explain"] = "true"
        with path.open("rb") as handle:
            response = self._send("POST", f"/models/{model}/{route}", files={"file": (path.name, handle)},
                                  data=data or None, headers={"Accept": "text/csv"}, stream=True)
            _save(response, out)

    def download(self, model: str, out: str | os.PathLike[str] | None = None, format: str = "keras") -> Path:
        """Save the model (``format="keras"``: a ``.keras`` file with its preprocessing inside;
        ``"savedmodel"``: a zip for TF Serving). ``out`` defaults to the server's file name."""
        response = self._send("GET", f"/models/{model}/download", params={"format": format}, stream=True)
        target = Path(out) if out is not None else Path(_attachment_name(response) or f"model-{model}")
        if target.is_dir():
            target = target / (_attachment_name(response) or f"model-{model}")
        _save(response, target)
        return target

    # -- housekeeping ----------------------------------------------------------------------

    def delete(self, kind: str, resource_id: str) -> None:
        """Delete a ``model``, ``job`` or ``dataset`` with its files (409 while it is in use, saying what to
        do first). A running job is cancelled and deleted once its trials stop."""
        if kind not in ("model", "job", "dataset"):
            raise ValueError(f"kind must be model, job or dataset, not {kind!r}")
        self._send("DELETE", f"/{kind}s/{resource_id}")

    def usage(self) -> list[dict[str, Any]]:
        """The team's usage against each quota (an admin key: every team's)."""
        return self._json("GET", "/usage")["teams"]

    # -- keys (admin keys only) --------------------------------------------------------------

    def keys(self, team: str | None = None, revoked: bool = False) -> list[dict[str, Any]]:
        """API keys by id (never the keys themselves)."""
        params: dict[str, Any] = {"revoked": str(revoked).lower()}
        if team is not None:
            params["team"] = team
        return self._json("GET", "/keys", params=params)

    def create_key(self, team: str, role: str = "write", name: str | None = None,
                   expires_in: str | None = None) -> dict[str, Any]:
        """A new key for ``team`` with ``role`` (predict, read, write or admin), optionally expiring
        (``"90d"``); the answer's ``key`` is the only time the key is shown."""
        body = {"team": team, "role": role, "name": name, "expires_in": expires_in}
        return self._json("POST", "/keys", json={k: v for k, v in body.items() if v is not None})

    def revoke_key(self, key_id: str) -> None:
        self._send("DELETE", f"/keys/{key_id}")

    # -- plumbing ---------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, retry_post: bool = False, stream: bool = False,
              **kwargs: Any) -> requests.Response:
        url = f"{self.url}/api/v1{path}"
        attempts = 3 if retry_post else 1
        for attempt in range(attempts):
            try:
                response = self.http.request(method, url, timeout=self.timeout, stream=stream, **kwargs)
            except requests.ConnectionError as exc:  # after the adapter's own connect retries
                raise ConnectionFailed(f"cannot reach the service at {self.url} ({_cause(exc)}); is it running, "
                                       f"and is --url / {URL_ENV} right?") from None
            except requests.Timeout:
                raise ConnectionFailed(f"no answer from {self.url} within {self.timeout:g} s") from None
            if response.status_code in (502, 503, 504) and attempt + 1 < attempts:
                time.sleep(0.5 * 2**attempt)
                continue
            break
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise error_from_response(response.status_code, response.reason, body,
                                      response.headers.get("Retry-After"))
        return response


def _cell(value: Any) -> Any:
    """A DataFrame cell as JSON: a missing value (NaN, NaT, None) as null, a date or time as ISO 8601
    text, a NumPy number as a plain one."""
    if value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType":
        return None
    if hasattr(value, "isoformat"):  # datetime, date, pandas' Timestamp (NaT is not equal to itself)
        return None if value != value else value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy scalars
        value = value.item()
        return None if isinstance(value, float) and value != value else value
    return value


def _instances(instances: Any, mc_samples: int | None, explain: bool = False) -> dict[str, Any]:
    if hasattr(instances, "to_dict"):  # a pandas DataFrame, without importing pandas
        instances = [{name: _cell(value) for name, value in row.items()} for row in instances.to_dict("records")]
    elif isinstance(instances, Mapping):
        instances = [instances]
    body: dict[str, Any] = {"instances": list(instances)}
    if mc_samples is not None:
        body["mc_samples"] = mc_samples
    if explain:
        body["explain"] = True
    return body


def _save(response: requests.Response, out: str | os.PathLike[str] | IO[bytes]) -> None:
    if isinstance(out, (str, os.PathLike)):
        target = Path(out)
        partial = target.with_name(target.name + ".part")
        with partial.open("wb") as handle:
            for chunk in response.iter_content(_CHUNK):
                handle.write(chunk)
        partial.replace(target)  # never half a file under the real name
    else:
        for chunk in response.iter_content(_CHUNK):
            out.write(chunk)


def _attachment_name(response: requests.Response) -> str | None:
    disposition = response.headers.get("Content-Disposition", "")
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename" and value:
            return Path(value.strip('"')).name  # never a path the server chose
    return None


def _cause(exc: Exception) -> str:
    """'Connection refused' rather than urllib3's nested retry report."""
    found = re.findall(r"\[Errno -?\d+\] ([^')\"]+)", str(exc))
    return found[-1].strip() if found else type(exc).__name__


def _read_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
