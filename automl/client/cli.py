"""The client half of the ``automl`` command: ``upload``, ``train``, ``wait``, ``trials``, ``predict``,
``download`` (and ``datasets``, ``jobs``, ``models``), talking to a local or remote service.

Every command takes ``--url`` and ``--api-key`` (or ``AUTOML_URL`` / ``AUTOML_API_KEY``; without a
key, the embedded mode's ``var/admin-key`` is used). Results go to stdout (an id, a table, or JSON
with ``--json``), progress and notes to stderr, so ``JOB=$(automl train ...)`` works. A failure
prints the server's message and exits 1.

This module imports only the client (requests, click, rich), never the server's packages.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from automl.client.client import KEY_ENV, URL_ENV, Client
from automl.client.errors import AutomlError, JobFailed
from automl.client.progress import JobProgress

F = TypeVar("F", bound=Callable[..., Any])


def _connection(command: F) -> F:
    """``--url`` / ``--api-key`` on a command, turned into a ``client`` argument; client errors
    become a one-line message and exit status 1."""

    @click.option("--url", envvar=URL_ENV, default=None, metavar="URL",
                  help=f"The service (default ${URL_ENV} or http://127.0.0.1:8000).")
    @click.option("--api-key", envvar=KEY_ENV, default=None, metavar="KEY",
                  help=f"An API key (default ${KEY_ENV}, else the embedded mode's var/admin-key).")
    @functools.wraps(command)
    def wrapper(url: str | None, api_key: str | None, **kwargs: Any) -> Any:
        with Client(url, api_key) as client:
            try:
                return command(client=client, **kwargs)
            except AutomlError as exc:
                raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _json_out(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A table on stdout: rich's on a terminal; plain aligned columns, never truncated, elsewhere
    (so ``automl trials JOB | grep`` and logs see every value)."""
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    if sys.stdout.isatty():
        table = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
        for row in cells:
            table.add_row(*row)
        Console().print(table)
        return
    if title:
        click.echo(title, err=True)
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]
    for row in [list(columns), *cells]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _score(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else ""


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="The dataset's name (default: the file's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole dataset (schema included) as JSON.")
@_connection
def upload(client: Client, file: Path, name: str | None, as_json: bool) -> None:
    """Upload a CSV, Parquet or image-zip FILE; prints the dataset id."""
    dataset = client.upload(file, name=name)
    if as_json:
        _json_out(dataset)
        return
    columns = dataset.get("columns") or []
    click.echo(f"dataset {dataset['id']}: {dataset.get('name')} ({dataset.get('kind', 'tabular')}), "
               f"{dataset.get('n_rows')} rows, {len(columns)} columns", err=True)
    click.echo(dataset["id"])


@click.command()
@click.argument("dataset")
@click.option("--target", "targets", multiple=True, help="The column to predict (repeat for multi-label).")
@click.option("--max-trials", type=int, default=None, help="Trials to try (default: the service's).")
@click.option("--max-epochs", type=int, default=None, help="Epochs per trial at most.")
@click.option("--tuner", default=None, help="bayesian, random, hyperband or grid.")
@click.option("--objective", default=None, help="The metric to optimise, e.g. val_accuracy.")
@click.option("--task", default=None, help="auto, classification, regression or multilabel.")
@click.option("--time-budget", "time_budget_s", type=int, default=None, help="Wall-clock budget, seconds.")
@click.option("--search-space", default=None, metavar="JSON",
              help='Narrow the search, e.g. \'{"depth": [1, 2], "optimizer": ["adam"]}\'.')
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE",
              help="Any other job option (value parsed as JSON when it can be), e.g. --set seed=7.")
@click.option("--wait/--no-wait", default=False, help="Follow the search with a progress bar until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@_connection
def train(client: Client, dataset: str, targets: tuple[str, ...], max_trials: int | None, max_epochs: int | None,
          tuner: str | None, objective: str | None, task: str | None, time_budget_s: int | None,
          search_space: str | None, extra: tuple[str, ...], wait: bool, as_json: bool) -> None:
    """Start a search on DATASET; prints the job id (with --wait: when the search has ended, and
    exits 1 if it failed)."""
    options: dict[str, Any] = {key: value for key, value in {
        "max_trials": max_trials, "max_epochs": max_epochs, "tuner": tuner, "objective": objective,
        "task": task, "time_budget_s": time_budget_s}.items() if value is not None}
    if search_space is not None:
        options["search_space"] = _parse_json(search_space, "--search-space")
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        options[key.strip()] = _maybe_json(raw)
    target: str | list[str] | None = list(targets) if len(targets) > 1 else (targets[0] if targets else None)
    job = client.submit(dataset, target=target, **options)
    click.echo(f"job {job['id']} queued: {job.get('tuner')} search of {job.get('max_trials')} trials, "
               f"objective {job.get('objective')}", err=True)
    if wait:
        job = _follow(client, job["id"])
    if as_json:
        _json_out(job)
    else:
        click.echo(job["id"])


@click.command("wait")
@click.argument("job_id", metavar="JOB")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds (exit 1).")
@click.option("--json", "as_json", is_flag=True, help="Print the finished job as JSON.")
@_connection
def wait_command(client: Client, job_id: str, timeout: float | None, as_json: bool) -> None:
    """Follow a running JOB with a progress bar until it ends; exits 1 if it failed."""
    job = _follow(client, job_id, timeout)
    if as_json:
        _json_out(job)


def _follow(client: Client, job_id: str, timeout: float | None = None) -> dict[str, Any]:
    progress = JobProgress(sys.stderr)
    try:
        job = client.wait(job_id, timeout=timeout, poll_s=1.0, on_update=progress.update, raise_on_failure=False)
    finally:
        progress.close()
    if job["state"] != "succeeded":
        raise JobFailed(job)
    reason = f" ({job['stop_reason']})" if job.get("stop_reason") else ""
    click.echo(f"job {job_id} succeeded{reason}: best {job.get('objective')} {_score(job.get('best_score'))}, "
               f"model {job.get('model_id')}", err=True)
    return job


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option("--json", "as_json", is_flag=True, help="Print the leaderboard as JSON.")
@_connection
def trials(client: Client, job_id: str, as_json: bool) -> None:
    """JOB's trials as a table, best first, with the hyperparameters that differ between them."""
    board = client.leaderboard(job_id)
    if as_json:
        _json_out(board)
        return
    names: list[str] = []
    for trial in board:
        names.extend(name for name in trial.get("hyperparameters") or {} if name not in names)
    varying = [name for name in names
               if len({json.dumps((t.get("hyperparameters") or {}).get(name)) for t in board}) > 1]
    columns = ["#", "trial_id", "state", "score", "best_epoch", "epochs", *varying]
    rows = [[trial.get("number", 0) + 1, trial.get("trial_id"), trial.get("state"), _score(trial.get("score")),
             trial.get("best_epoch"), trial.get("epochs_done"),
             *(_cell((trial.get("hyperparameters") or {}).get(name)) for name in varying)] for trial in board]
    _table(columns, rows, title=f"job {job_id}: {len(board)} trials")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@click.command()
@click.argument("model")
@click.argument("rows", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the predictions CSV here (default: stdout).")
@click.option("--proba", is_flag=True, help="Class probabilities (predict_proba) rather than predictions.")
@click.option("--passthrough", default="", metavar="COLUMNS",
              help="Comma-separated input columns to copy into the output (e.g. an id).")
@_connection
def predict(client: Client, model: str, rows: Path, output: Path | None, proba: bool, passthrough: str) -> None:
    """Score ROWS (a CSV or Parquet file of any size) with MODEL (an id or an alias)."""
    columns = [c.strip() for c in passthrough.split(",") if c.strip()]
    if output is None:
        client.predict_file(model, rows, sys.stdout.buffer, proba=proba, passthrough=columns)
        return
    client.predict_file(model, rows, output, proba=proba, passthrough=columns)
    click.echo(f"wrote {output}", err=True)


@click.command()
@click.argument("model")
@click.argument("rows", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the CSV here (default: stdout).")
@click.option("--passthrough", default="", metavar="COLUMNS",
              help="Comma-separated input columns to copy into the output (e.g. an id).")
@_connection
def explain(client: Client, model: str, rows: Path, output: Path | None, passthrough: str) -> None:
    """Predict ROWS (CSV or Parquet) with MODEL and explain each row: its prediction, what is explained
    (explains, explained_value) and each column's effect on it (attribution:<column>)."""
    columns = [c.strip() for c in passthrough.split(",") if c.strip()]
    client.predict_file(model, rows, output or sys.stdout.buffer, passthrough=columns, explain=True)
    if output is not None:
        click.echo(f"wrote {output}", err=True)


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection
def importance(client: Client, model: str, as_json: bool) -> None:
    """Which input columns MODEL (an id or an alias) relies on: permutation importance on its test rows."""
    found = client.importance(model)
    if as_json:
        _json_out(found)
        return
    title = (f"model {found['model_id']}: drop in {found['metric']} (from {found['baseline']:.4g}) when a column "
             f"is shuffled, {found['repeats']} repeats on {found['rows']} test rows")
    _table(["column", "mean drop", "std"], [[c["name"], f"{c['mean']:.4f}", f"{c['std']:.4f}"]
                                             for c in found["columns"]], title=title)


@click.command()
@click.argument("model")
@click.option("--hours", type=int, default=24, show_default=True, help="Compare the inputs of the last HOURS.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection
def drift(client: Client, model: str, hours: int, as_json: bool) -> None:
    """Do the inputs MODEL (an id or an alias) served lately still look like its training rows?"""
    found = client.drift(model, hours)
    if as_json:
        _json_out(found)
        return
    judged = {True: "DRIFTED", False: "", None: "(too few rows)"}
    title = (f"model {found['model_id']}: {found['rows']} inputs since {found['since']}; PSI above "
             f"{found['threshold']} is drift; drifted: {', '.join(found['drifted']) or 'none'}")
    _table(["column", "psi", "drifted", "missing", "training missing", "out of range / unseen"], [
        [c["name"], _cell(c["psi"]), judged[c["drifted"]], _cell(c["missing_share"]),
         _cell(c["training_missing_share"]), _cell(c.get("out_of_range_share", c.get("unseen_share")))]
        for c in found["columns"]], title=title)


@click.command()
@click.argument("model")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="A file or folder (default: the current folder, the server's file name).")
@click.option("--format", "fmt", type=click.Choice(["keras", "savedmodel"]), default="keras", show_default=True,
              help="keras: one .keras file, preprocessing inside; savedmodel: a zip for TF Serving.")
@_connection
def download(client: Client, model: str, output: Path | None, fmt: str) -> None:
    """Download MODEL (an id or an alias); prints where it was saved."""
    click.echo(str(client.download(model, output, format=fmt)))


def _listing(name: str, fetch: Callable[[Client], list[dict[str, Any]]],
             columns: dict[str, Callable[[dict[str, Any]], Any]], help_text: str) -> click.Command:
    @click.option("--limit", type=int, default=50, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @_connection
    def command(client: Client, limit: int, as_json: bool) -> None:
        items = fetch(client)[:limit]
        if as_json:
            _json_out(items)
            return
        _table(list(columns), [[get(item) for get in columns.values()] for item in items])

    command.__doc__ = help_text
    return click.command(name)(command)


datasets = _listing("datasets", lambda c: c.datasets(), {
    "id": lambda d: d["id"], "name": lambda d: d.get("name"), "kind": lambda d: d.get("kind"),
    "rows": lambda d: d.get("n_rows"), "created": lambda d: d.get("created_at")}, "Your datasets, newest first.")
jobs = _listing("jobs", lambda c: c.jobs(), {
    "id": lambda j: j["id"], "state": lambda j: j.get("state"),
    "trials": lambda j: f"{j.get('trials_done')}/{j.get('max_trials')}",
    "objective": lambda j: j.get("objective"), "best": lambda j: _score(j.get("best_score")),
    "model": lambda j: j.get("model_id"), "created": lambda j: j.get("created_at")}, "Your jobs, newest first.")
models = _listing("models", lambda c: c.models(), {
    "id": lambda m: m["id"], "state": lambda m: m.get("state"), "task": lambda m: m.get("task"),
    "job": lambda m: m.get("job_id"), "deployed": lambda m: "yes" if m.get("deployed") else "",
    "created": lambda m: m.get("created_at")},
    "Your models, newest first.")

COMMANDS: tuple[click.Command, ...] = (upload, train, wait_command, trials, predict, explain, importance, drift,
                                       download, datasets, jobs, models)


def _parse_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
