"""For people, against the production shape (the API server, a Celery worker, PostgreSQL, Redis):

- the `automl` command uploads, trains with `--wait` (progress on stderr: trials, the running
  trial's epoch, best score, time left), lists trials, scores a CSV and downloads the model;
- while that search runs, the web dashboard in a real (headless Debian) Chromium follows the same
  job: its learning curves grow without a reload, then it shows every epoch of every trial, the
  sortable leaderboard, the final model's curves, test metrics, confusion matrix and a prediction
  that matches the API's;
- the Python client's answers and typed errors.

Screenshots go to $AUTOML_TEST_ARTIFACTS (default test-artifacts/).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sklearn.datasets import make_classification

from automl.client import Client, NotFound, Unauthorized
from tests.integration.conftest import JOB_TIMEOUT_S, Service, upload_csv

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("AUTOML_TEST_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM = os.environ.get("AUTOML_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FINISHED = ("succeeded", "failed", "cancelled")
MAX_TRIALS, MAX_EPOCHS = 4, 10  # 4 trials: enough for hyperparameter importance
FEATURES = [f"f{i}" for i in range(8)]


def cli_env(service: Service) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOML_")}
    return {**env, "AUTOML_URL": service.url, "AUTOML_API_KEY": service.key}


def automl(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], env=cli_env(service), capture_output=True,
                          text=True, timeout=300)


def colours() -> pd.DataFrame:
    x, y = make_classification(n_samples=900, n_features=8, n_informative=5, n_classes=3, random_state=3)
    frame = pd.DataFrame(x, columns=FEATURES).round(4)
    frame["label"] = pd.Series(y).map({0: "red", 1: "green", 2: "blue"})
    return frame


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Debian's Chromium (installed by `make test` / .ci/run); Playwright downloads nothing.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


def open_dashboard(browser: Browser, service: Service, key: str | None = None) -> Page:
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{service.url}/")
    page.fill("#key input[name=key]", key or service.key)
    page.click("#key button")
    page.set_default_timeout(60_000)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def chart(page: Page, scope: str = "") -> dict[str, int]:
    values = page.eval_on_selector(f"{scope} .chart", "e => [e.dataset.series, e.dataset.points, e.dataset.updates]")
    return dict(zip(("series", "points", "updates"), (int(v or 0) for v in values), strict=True))


def snapshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.fixture(scope="module")
def followed(distributed: Service, browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`automl upload` + `automl train --wait` in a terminal-less process, while the dashboard,
    opened on the job as soon as it is queued, is watched without a reload until the job ends."""
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "colours.csv"
    colours().to_csv(data, index=False)
    uploaded = automl(distributed, "upload", str(data))
    assert uploaded.returncode == 0, uploaded.stderr
    dataset_id = uploaded.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", dataset_id), uploaded.stdout
    assert f"dataset {dataset_id}: colours.csv (tabular), 900 rows, 9 columns" in uploaded.stderr

    train = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "train", dataset_id, "--target", "label", "--max-trials", str(MAX_TRIALS),
         "--max-epochs", str(MAX_EPOCHS), "--tuner", "random", "--set", "seed=5", "--set", "patience=20", "--wait"],
        env=cli_env(distributed), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress: list[str] = []
    reader = threading.Thread(target=lambda: progress.extend(iter(train.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 60
    while not any("queued:" in line for line in progress):
        assert train.poll() is None and time.monotonic() < deadline, "".join(progress)
        time.sleep(0.1)
    job_id = re.search(r"job (\w+) queued", "".join(progress)).group(1)  # type: ignore[union-attr]

    page = open_dashboard(browser, distributed)
    page.goto(f"{distributed.url}/#/jobs/{job_id}")
    seen: list[tuple[str, int]] = []  # (state shown, learning-curve points drawn), sampled by the test
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        state = page.text_content("#job-state", timeout=60_000) or ""
        points = chart(page)["points"] if page.query_selector(".chart") else 0
        seen.append((state, points))
        if state in FINISHED or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    # stderr is the reader thread's alone (communicate() would read it too and take lines from it).
    stdout = train.stdout.read()  # type: ignore[union-attr]
    train.wait(timeout=300)
    reader.join(timeout=30)
    assert not reader.is_alive(), "the progress reader did not reach the end of stderr"
    page.wait_for_selector("#leaderboard tbody tr[data-trial]")
    snapshot(page, "dashboard-job.png")
    return {"dataset_id": dataset_id, "job_id": job_id, "page": page, "seen": seen, "returncode": train.returncode,
            "stdout": stdout, "progress": progress, "data": data, "folder": folder}


def test_automl_train_wait_shows_trials_epochs_best_score_and_time_left(followed: dict[str, Any],
                                                                         distributed: Service) -> None:
    job = Client(distributed.url, distributed.key).job(followed["job_id"])
    assert job["state"] == "succeeded", job
    assert followed["returncode"] == 0, "".join(followed["progress"])
    assert followed["stdout"].strip() == followed["job_id"]
    lines = [line.rstrip("\n") for line in followed["progress"]]
    epoch = rf"trial [1-{MAX_TRIALS}] epoch \d+/{MAX_EPOCHS}"
    assert any(re.fullmatch(rf"running: trials [0-2]/{MAX_TRIALS} \| {epoch} \| best (no score yet|val_log_loss \S+) "
                            rf"\| (\? left|(\d+m)?\d+s left)", line) for line in lines), lines
    assert any(re.fullmatch(rf"running: trials [12]/{MAX_TRIALS} \| .* \| best val_log_loss [0-9.e-]+ \| "
                            r"(\d+m)?\d+s left", line) for line in lines), lines
    best = f"best val_log_loss {job['best_score']:.4g}"
    assert f"succeeded: trials {MAX_TRIALS}/{MAX_TRIALS} | - | {best} | done" in lines
    assert lines[-1] == (f"job {job['id']} succeeded (max_trials): best val_log_loss {job['best_score']:.4g}, "
                         f"model {job['model_id']}")


def test_the_dashboard_draws_every_trials_curves_live_while_the_job_runs(followed: dict[str, Any],
                                                                         distributed: Service) -> None:
    page: Page = followed["page"]
    client = Client(distributed.url, distributed.key)
    board = client.leaderboard(followed["job_id"])
    seen = followed["seen"]
    running = [points for state, points in seen if state not in FINISHED and points > 0]
    assert running, f"the page never showed a curve while the job ran: {seen}"
    final = chart(page)
    # Grew while the page stayed open, and ends with every epoch of every trial, train and validation.
    assert final["points"] > min(running)
    assert final["updates"] >= 2
    assert final["series"] == 2 * MAX_TRIALS
    epochs = {t["trial_id"]: len(client.history(followed["job_id"], t["trial_id"])) for t in board}
    assert final["points"] == 2 * sum(epochs.values()) and all(n > 0 for n in epochs.values())
    assert page.query_selector(".chart canvas") is not None
    assert page.text_content("#job-left") == "done"
    assert not page.errors  # type: ignore[attr-defined]

    # The leaderboard: one row per trial, every hyperparameter a column, sortable both ways.
    headers = page.eval_on_selector_all("#leaderboard th", "els => els.map(e => e.textContent)")
    assert {"learning_rate", "optimizer", "num_layers", "batch_size"} <= set(headers)
    scores = lambda: [float(s) for s in page.eval_on_selector_all(  # noqa: E731
        "#leaderboard tbody tr td:nth-child(4)", "els => els.map(e => e.textContent)")]
    assert len(scores()) == MAX_TRIALS
    assert scores() == sorted(scores())  # best (lowest val_log_loss) first
    page.click("#leaderboard th:nth-child(4)")
    assert scores() == sorted(scores(), reverse=True)
    learning_rate = headers.index("learning_rate") + 1
    page.click(f"#leaderboard th:nth-child({learning_rate})")
    rates = [float(t) for t in page.eval_on_selector_all(
        f"#leaderboard tbody tr td:nth-child({learning_rate})", "els => els.map(e => e.textContent)")]
    assert rates == sorted(rates)

    # What the search learned: every trial in parallel coordinates, and the hyperparameters' importance
    # as the API estimates it.
    page.wait_for_selector("#hp-importance .bar-row")
    assert page.eval_on_selector("#parallel", "e => Number(e.dataset.trials)") == MAX_TRIALS
    assert page.eval_on_selector("#parallel", "e => Number(e.dataset.axes)") >= 3
    importance = client.job_importance(followed["job_id"])
    shown = page.eval_on_selector_all("#hp-importance .bar-row", "rows => rows.map(r => r.children[0].textContent)")
    assert shown == [h["name"] for h in importance["hyperparameters"]] and importance["trials"] == MAX_TRIALS

    page.select_option(".card select[aria-label=metric]", "accuracy")
    assert chart(page)["series"] == 2 * MAX_TRIALS and page.eval_on_selector(".chart", "e => e.dataset.metric") \
        == "accuracy"


def test_the_dashboard_shows_the_dataset_and_the_final_model_and_predicts(followed: dict[str, Any],
                                                                          distributed: Service) -> None:
    page: Page = followed["page"]
    client = Client(distributed.url, distributed.key)
    job = client.job(followed["job_id"])
    model = client.model(job["model_id"])

    page.goto(f"{distributed.url}/#/datasets/{followed['dataset_id']}")
    page.wait_for_selector("#schema")
    balance = page.eval_on_selector_all("#schema .bar-label", "els => els.map(e => e.textContent)")
    assert sorted(balance) == ["blue", "green", "red"]  # the label column's class balance
    snapshot(page, "dashboard-dataset.png")

    page.goto(f"{distributed.url}/#/models/{model['id']}")
    page.wait_for_selector("#confusion")
    metrics = dict(page.eval_on_selector_all("#test-metrics tbody tr", "rows => rows.map(r => "
                                             "[r.cells[0].textContent, r.cells[1].textContent])"))
    assert float(metrics["accuracy"]) == pytest.approx(model["test_metrics"]["accuracy"], abs=1e-3)
    cells = page.eval_on_selector_all("#confusion tbody tr", "rows => rows.map(r => [...r.querySelectorAll('td')]"
                                      ".map(c => c.textContent))")
    assert [[int(c) for c in row] for row in cells] == model["confusion_matrix"]["matrix"]
    page.wait_for_selector(".chart canvas")
    # The served model was retrained on every row (the default): one training curve, no validation one.
    history = client.model_history(model["id"])
    assert model["refit"] and not any(key.startswith("val_") for key in history[0])
    assert chart(page)["points"] == len(history)

    row = pd.read_csv(followed["data"]).iloc[7]
    for feature in FEATURES:
        page.fill(f"#predict input[name={feature}]", str(row[feature]))
    instance = {feature: float(row[feature]) for feature in FEATURES}
    page.click("#predict-button")
    page.wait_for_selector("#prediction .prediction-value")
    assert page.text_content("#prediction .prediction-value") == client.predict(model["id"], [instance])[
        "predictions"][0]
    page.click("#proba-button")
    page.wait_for_selector("#prediction #probabilities")  # the predict answer's own bars are explanations
    shown = dict(page.eval_on_selector_all("#probabilities > .bars .bar-row", "rows => rows.map(r => "
                                           "[r.children[0].textContent, r.children[2].textContent])"))
    expected = client.predict_proba(model["id"], [instance])
    for label, probability in zip(expected["classes"], expected["probabilities"][0], strict=True):
        assert float(shown[label]) == pytest.approx(probability, abs=1e-3)
    # Why: each column's effect, as the API explains the same row.
    effects = dict(page.eval_on_selector_all("#explanation .bar-row", "rows => rows.map(r => "
                                             "[r.children[0].textContent, r.children[2].textContent])"))
    explained = client.predict_proba(model["id"], [instance], explain=True)["explanations"][0]["attributions"]
    assert list(effects) == list(explained)
    assert [float(v) for v in effects.values()] == pytest.approx(list(explained.values()), abs=1e-4)
    # Which columns matter, and how sure the model is: the card's figures, as the API has them.
    shown = page.eval_on_selector_all("#importance .bar-row", "rows => rows.map(r => r.children[0].textContent)")
    assert shown == [c["name"] for c in model["importance"]["columns"]] and sorted(shown) == FEATURES
    reliability = page.eval_on_selector_all("#reliability tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
    served = model["calibration"]["calibrated" if model["calibration"]["applied"] else "uncalibrated"]
    assert [int(n) for n in reliability] == [b["count"] for b in served["bins"]]
    assert sum(b["count"] for b in served["bins"]) == model["split_sizes"]["test"]
    # Drift: the page's table lists every input column with its PSI, as the API reports it.
    page.click("#drift-refresh")
    page.wait_for_selector("#drift tbody tr")
    drift_rows = page.eval_on_selector_all("#drift tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert sorted(drift_rows) == FEATURES and client.drift(model["id"])["threshold"] == 0.25
    snapshot(page, "dashboard-model.png")
    assert not page.errors  # type: ignore[attr-defined]


def test_automl_trials_predict_and_download(followed: dict[str, Any], distributed: Service) -> None:
    client = Client(distributed.url, distributed.key)
    job = client.job(followed["job_id"])
    board = client.leaderboard(job["id"])

    trials = automl(distributed, "trials", job["id"])
    assert trials.returncode == 0, trials.stderr
    header, *rows = trials.stdout.splitlines()
    assert header.split()[:6] == ["#", "trial_id", "state", "score", "best_epoch", "epochs"]
    assert [r.split()[1] for r in rows] == [t["trial_id"] for t in board]
    assert float(rows[0].split()[3]) == pytest.approx(job["best_score"], rel=1e-3)

    rows_csv = followed["folder"] / "rows.csv"
    sample = pd.read_csv(followed["data"]).head(25)
    sample[FEATURES].to_csv(rows_csv, index=False)
    out = followed["folder"] / "out.csv"
    scored = automl(distributed, "predict", job["model_id"], str(rows_csv), "-o", str(out), "--proba")
    assert scored.returncode == 0, scored.stderr
    expected = client.predict_proba(job["model_id"], sample[FEATURES])
    written = pd.read_csv(out)
    assert list(written.columns) == expected["classes"] and len(written) == 25
    assert written.to_numpy() == pytest.approx(pd.DataFrame(expected["probabilities"]).to_numpy(), abs=1e-6)
    labels = automl(distributed, "predict", job["model_id"], str(rows_csv))
    assert labels.stdout.splitlines()[1:] == [f'"{p}"' for p in client.predict(job["model_id"], sample[FEATURES])[
        "predictions"]]

    explained_csv = followed["folder"] / "explained.csv"
    explained = automl(distributed, "explain", job["model_id"], str(rows_csv), "-o", str(explained_csv))
    assert explained.returncode == 0, explained.stderr
    written = pd.read_csv(explained_csv)
    answer = client.predict(job["model_id"], sample[FEATURES], explain=True)
    assert written["prediction"].tolist() == answer["predictions"]
    for feature in FEATURES:  # every row's effect of every column, as the JSON answer has it
        assert written[f"attribution:{feature}"].tolist() == pytest.approx(
            [e["attributions"][feature] for e in answer["explanations"]], abs=1e-5)
    assert written["explained_value"].tolist() == pytest.approx(
        [max(p) for p in client.predict_proba(job["model_id"], sample[FEATURES])["probabilities"]], abs=1e-5)

    ranked = automl(distributed, "importance", job["model_id"])
    assert ranked.returncode == 0, ranked.stderr
    importance = client.importance(job["model_id"])
    assert [line.split()[0] for line in ranked.stdout.splitlines()[1:]] == [c["name"] for c in importance["columns"]]
    assert importance["metric"] == "accuracy" and importance["rows"] == client.model(job["model_id"])[
        "split_sizes"]["test"]

    drifting = automl(distributed, "drift", job["model_id"])
    assert drifting.returncode == 0, drifting.stderr
    report = client.drift(job["model_id"])  # the rows scored above were counted (some may still be on their way)
    assert sorted(line.split()[0] for line in drifting.stdout.splitlines()[1:]) == FEATURES
    assert {c["name"] for c in report["columns"]} == set(FEATURES) and report["threshold"] == 0.25

    downloaded = automl(distributed, "download", job["model_id"], "-o", str(followed["folder"]))
    assert downloaded.returncode == 0, downloaded.stderr
    saved = Path(downloaded.stdout.strip())
    assert saved.parent == followed["folder"] and saved.suffix == ".keras" and zipfile.is_zipfile(saved)
    assert not list(followed["folder"].glob("*.part"))


def test_the_python_client(followed: dict[str, Any], distributed: Service) -> None:
    with Client(distributed.url, distributed.key) as client:
        job = client.wait(followed["job_id"], timeout=5)  # already finished: answers at once
        assert job["state"] == "succeeded"
        assert followed["job_id"] in {j["id"] for j in client.jobs()}
        assert followed["dataset_id"] in {d["id"] for d in client.datasets()}
        assert client.dataset(followed["dataset_id"])["n_rows"] == 900
        board = client.leaderboard(job["id"])
        assert len(board) == MAX_TRIALS and board[0]["trial_id"] == job["best_trial_id"]
        assert [row["epoch"] for row in client.history(job["id"], board[0]["trial_id"])][:2] == [0, 1]
        assert client.model(job["model_id"])["classes"] == ["blue", "green", "red"]

        with pytest.raises(NotFound, match="No job with id 'nope'") as missing:
            client.job("nope")
        assert missing.value.status == 404
        failed = automl(distributed, "trials", "nope")
        assert failed.returncode == 1 and failed.stderr.strip() == "Error: 404 No job with id 'nope'."
    with Client(distributed.url, "amk_0123456789abcdef_wrong") as stranger, pytest.raises(Unauthorized):
        stranger.jobs()


def test_the_dashboard_asks_again_for_a_refused_key_and_shows_hostile_names_as_text(
        distributed: Service, browser: Browser, tmp_path: Path) -> None:
    page = open_dashboard(browser, distributed, key="amk_0123456789abcdef_wrong")
    page.wait_for_selector("#flash:has-text('did not accept this key')")
    assert page.query_selector("#key input[name=key]") is not None

    hostile = '<img src=x onerror="document.title=1">'
    path = tmp_path / "hostile.csv"
    pd.DataFrame({hostile: list(range(20)), "y": ["a", "b"] * 10}).to_csv(path, index=False)
    dataset = upload_csv(distributed, path)
    page.fill("#key input[name=key]", distributed.key)
    page.click("#key button")
    page.goto(f"{distributed.url}/#/datasets/{dataset['id']}")
    page.wait_for_selector("#schema")
    assert hostile in page.eval_on_selector_all("#schema td", "els => els.map(e => e.textContent)")
    assert page.query_selector("#schema img") is None and page.title() == "Keras AutoML"
