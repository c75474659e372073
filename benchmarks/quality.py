"""Model quality at a fixed wall-clock budget, against gradient boosting, and search overhead.

For each dataset (shipped with scikit-learn, or palmerpenguins) the service's own search
runs through the same steps as a job (``create_job`` -> ``search_spec`` -> one
``run_trial_step`` per step -> ``train_final_model``) with ``time_budget_s`` and
``refit``, and scikit-learn's HistGradientBoosting is fitted on the same train +
validation rows; both are scored once on the same held-out test rows.

Then the overhead of running a search as a job (a fresh tuner per trial, reloading the
project, writing every trial and epoch to the metadata store) is timed against a plain
Keras Tuner script with the same hypermodel, space, data and number of trials, in
alternating repetitions in this process; the ratio of medians is reported (aim <= 1.10).

    .venv/bin/python benchmarks/quality.py [--budget 60] [--repeats 3] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automl.access import DEFAULT_TEAM, Scope
from automl.datasets.ingest import ingest_file, load_frame
from automl.jobs import JobRequest, create_job, search_spec
from automl.search.spec import SearchSpec
from automl.settings import Settings
from automl.store import Store, repository
from automl.store.records import DatasetRecord

MARK_START, MARK_END = "<!-- quality:start -->", "<!-- quality:end -->"


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


def _sklearn(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        frame: pd.DataFrame = getattr(datasets, name)(as_frame=True).frame
        return frame

    return load


DATASETS: list[tuple[str, Callable[[], pd.DataFrame], str]] = [
    ("breast_cancer (binary)", _sklearn("load_breast_cancer"), "target"),
    ("wine (multiclass)", _sklearn("load_wine"), "target"),
    ("digits (multiclass)", _sklearn("load_digits"), "target"),
    ("penguins (multiclass, categorical + missing)", _penguins, "species"),
    ("diabetes (regression)", _sklearn("load_diabetes"), "target"),
]


@dataclass
class Workspace:
    settings: Settings
    store: Store

    @classmethod
    def create(cls, root: Path) -> Workspace:
        settings = Settings(data_dir=root)
        store = Store(settings.sqlalchemy_url)
        store.migrate()
        return cls(settings, store)

    def job(self, frame: pd.DataFrame, name: str, **request: Any) -> SearchSpec:
        """Upload and submit exactly as the API does; the search spec a worker would build."""
        path = self.settings.tmp_dir / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        ingested = ingest_file(path, path.name, self.settings.datasets_dir)
        with self.store.session() as session:
            session.add(DatasetRecord(
                id=ingested.id, name=ingested.name, source_format=ingested.source_format, path=str(ingested.path),
                n_rows=ingested.n_rows, n_columns=ingested.n_columns, size_bytes=ingested.size_bytes,
                columns=ingested.columns,
            ))
        with self.store.session() as session:
            job = create_job(session, self.settings, JobRequest(dataset_id=ingested.id, **request), Scope(DEFAULT_TEAM))
            session.flush()
            repository.mark_running(session, job.id)
            session.flush()
            return search_spec(job, repository.get_dataset(session, ingested.id), self.settings)


# --- quality ------------------------------------------------------------------------------


def _gbdt_score(spec: SearchSpec) -> tuple[dict[str, float | None], float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from automl.datasets.targets import encode_labels
    from automl.search.evaluation import evaluate

    frame = load_frame(spec.dataset_path)
    frame = frame[frame[spec.target].notna()].reset_index(drop=True)
    split = np.load(spec.work_dir / "split.npz")
    features = frame.drop(columns=[spec.target])
    for column, kind in spec.column_types.items():
        if column == spec.target:
            continue
        if kind == "categorical":
            features[column] = features[column].astype("category")
        else:
            features[column] = pd.to_numeric(features[column].astype("Float64"), errors="coerce").astype("float64")
    fit_rows = np.concatenate([split["train"], split["validation"]])
    test_rows = split["test"]
    started = time.perf_counter()
    if spec.task == "regression":
        y = frame[spec.target].to_numpy(dtype="float64")
        model: Any = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
        model.fit(features.iloc[fit_rows], y[fit_rows])
        output = model.predict(features.iloc[test_rows])
    else:
        assert spec.classes is not None
        y = encode_labels(frame[spec.target], spec.classes)
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
        model.fit(features.iloc[fit_rows], y[fit_rows])
        output = model.predict_proba(features.iloc[test_rows])
        if spec.task == "binary":
            output = output[:, 1]
    seconds = time.perf_counter() - started
    labels = spec.classes
    return evaluate(spec.task, y[test_rows], output, labels).metrics, seconds


def quality(workspace: Workspace, budget_s: int) -> list[dict[str, Any]]:
    from automl.search.local import run_local_search

    rows = []
    for name, load, target in DATASETS:
        frame = load()
        spec = workspace.job(frame, name.split()[0], target=target, tuner="bayesian", max_trials=500,
                             max_epochs=300, patience=15, time_budget_s=budget_s, refit=True, seed=0)
        started = time.perf_counter()
        result = run_local_search(spec)
        ours_s = time.perf_counter() - started
        gbdt, gbdt_s = _gbdt_score(spec)
        metric = "r2" if spec.task == "regression" else "accuracy"
        ours = result.trained.test_metrics
        row = {
            "dataset": name, "rows": len(frame), "test_rows": int(ours["n"] or 0), "metric": metric,
            "ours": ours[metric], "gbdt": gbdt[metric], "trials": result.trials, "ours_s": ours_s, "gbdt_s": gbdt_s,
            "ours_extra": ours.get("rmse") if metric == "r2" else ours.get("log_loss"),
            "gbdt_extra": gbdt.get("rmse") if metric == "r2" else gbdt.get("log_loss"),
        }
        rows.append(row)
        print(f"{name}: ours {row['ours']:.4f} ({result.trials} trials, {ours_s:.0f}s), "
              f"GBDT {row['gbdt']:.4f} ({gbdt_s:.1f}s)", flush=True)
    return rows


# --- overhead -----------------------------------------------------------------------------

OVERHEAD_TRIALS = 5
OVERHEAD_EPOCHS = 15


def _plain_keras_tuner(spec: SearchSpec, directory: Path) -> float:
    """What a user would write by hand: one RandomSearch over the same hypermodel, in one call."""
    import keras
    import keras_tuner as kt

    from automl.search.data import prepare
    from automl.search.runner import make_hypermodel

    data = prepare(spec)  # the same split and features the job uses
    started = time.perf_counter()
    keras.utils.set_random_seed(spec.seed)
    tuner = kt.RandomSearch(make_hypermodel(spec, data), objective=kt.Objective(spec.objective, spec.direction),
                            max_trials=OVERHEAD_TRIALS, seed=spec.seed, directory=str(directory),
                            project_name="plain", overwrite=True)
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=OVERHEAD_EPOCHS,
                 verbose=0)
    keras.backend.clear_session()
    return time.perf_counter() - started


def _service_search(workspace: Workspace, spec: SearchSpec) -> float:
    """The job path: a fresh tuner per trial, lease renewal and a store write every epoch."""
    from automl.search.runner import run_trial_step
    from tasks.reporting import StoreReporter

    owner = f"bench-{uuid.uuid4().hex[:6]}"
    with workspace.store.session() as session:
        assert repository.claim_lane(session, spec.job_id, 0, 0, owner, 3600) == repository.ACQUIRED
    reporter = StoreReporter(workspace.store, spec.job_id, owner, lane=0)
    started = time.perf_counter()
    for _ in range(OVERHEAD_TRIALS):
        run_trial_step(spec, reporter)
    return time.perf_counter() - started


def overhead(workspace: Workspace, repeats: int) -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    # Patience above the epoch count: every trial trains all its epochs in both runs.
    request = {"target": "target", "tuner": "random", "max_trials": OVERHEAD_TRIALS,
               "max_epochs": OVERHEAD_EPOCHS, "patience": OVERHEAD_EPOCHS + 1, "seed": 11}
    plain, service = [], []
    for i in range(repeats):
        spec = workspace.job(frame, f"overhead{i}", **request)
        with tempfile.TemporaryDirectory() as tmp:
            plain.append(_plain_keras_tuner(spec, Path(tmp)))
        service.append(_service_search(workspace, spec))
        print(f"overhead run {i}: plain {plain[-1]:.1f}s, service {service[-1]:.1f}s", flush=True)
    ratio = statistics.median(service) / statistics.median(plain)
    return {"plain": plain, "service": service, "ratio": ratio}


# --- report -------------------------------------------------------------------------------


def overhead_lines(over: dict[str, Any]) -> list[str]:
    return [
        f"### Search overhead against plain Keras Tuner ({OVERHEAD_TRIALS} random trials × {OVERHEAD_EPOCHS} "
        "epochs, breast_cancer)",
        "",
        "Same hypermodel, space, split, seed and trials. Plain: one `RandomSearch.search` call. Service: one "
        "`run_trial_step` per trial (a tuner reloaded from the project under the per-job lock to create the "
        "trial and again to end it) with the store reporter writing every trial, epoch and event to SQLite. "
        "Not included: the fresh pool process a worker starts per trial (see the memory table).",
        "",
        f"- plain Keras Tuner, s: {', '.join(f'{v:.2f}' for v in over['plain'])} "
        f"(median {statistics.median(over['plain']):.2f})",
        f"- service job path, s: {', '.join(f'{v:.2f}' for v in over['service'])} "
        f"(median {statistics.median(over['service']):.2f})",
        f"- **overhead ratio {over['ratio']:.3f}** (aim ≤ 1.10: {'met' if over['ratio'] <= 1.10 else 'NOT met'})",
    ]


def report(rows: list[dict[str, Any]], over: dict[str, Any], budget_s: int) -> str:
    lines = [
        MARK_START,
        f"### Quality at a {budget_s} s search budget (`benchmarks/quality.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores. Ours: Bayesian search through the job "
        f"code path, `time_budget_s={budget_s}`, `max_epochs=300`, `patience=15`, `refit=true`. GBDT: scikit-learn "
        "`HistGradientBoosting*` with default settings, fitted on the same train + validation rows. Both scored once "
        "on the same held-out test rows.",
        "",
        "| dataset | rows (test) | metric | ours | GBDT | ours − GBDT | ours: trials, wall s | GBDT wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = r["ours"] - r["gbdt"]
        lines.append(
            f"| {r['dataset']} | {r['rows']} ({r['test_rows']}) | test {r['metric']} | {r['ours']:.4f} | "
            f"{r['gbdt']:.4f} | {diff:+.4f} | {r['trials']}, {r['ours_s']:.0f} | {r['gbdt_s']:.2f} |"
        )
    behind = [r["dataset"] for r in rows if r["ours"] < r["gbdt"]]
    lines += [
        "",
        "Secondary: test log loss (classification) / RMSE (regression), ours vs GBDT: "
        + "; ".join(f"{r['dataset'].split()[0]} {r['ours_extra']:.4g} vs {r['gbdt_extra']:.4g}" for r in rows)
        + ".",
        "",
        ("Shortfall: below GBDT on " + ", ".join(behind) + "." if behind
         else "At or above GBDT on every dataset in this run."),
        "",
        *overhead_lines(over),
        MARK_END,
    ]
    return "\n".join(lines)


def write(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Model quality and search overhead\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=60, help="search wall-clock budget per dataset, seconds")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of the overhead comparison")
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (docs/benchmarks.md)")
    parser.add_argument("--overhead-only", action="store_true", help="measure and print the overhead only")
    args = parser.parse_args()
    if args.overhead_only:
        with tempfile.TemporaryDirectory() as root:
            print("\n".join(overhead_lines(overhead(Workspace.create(Path(root)), args.repeats))))
        return
    with tempfile.TemporaryDirectory() as root:
        workspace = Workspace.create(Path(root))
        over = overhead(workspace, args.repeats)
        rows = quality(workspace, args.budget)
    block = report(rows, over, args.budget)
    print(block)
    if args.write:
        write(args.write, block)


if __name__ == "__main__":
    main()
