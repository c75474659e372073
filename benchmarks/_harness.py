"""Running the service's own job path in one process, and scoring on rows the service never saw.

A benchmark splits each table into the rows it uploads and held-out rows (stratified for
classification, seeded); the service splits the uploaded rows again for its own search. The
held-out rows are scored through the saved model's serving path, as a client's ``predict`` would.
"""

from __future__ import annotations

import json
import os
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

from automl.access import DEFAULT_TEAM, Scope
from automl.datasets.dates import column_to_days
from automl.jobs import JobRequest, create_job, search_spec
from automl.search.spec import SearchSpec
from automl.settings import Settings
from automl.store import Store, catalogue, searches
from automl.usecases.datasets import register_dataset
from benchmarks._tables import BY_NAME, Table

HOLDOUT = 0.2


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

    def upload(self, frame: pd.DataFrame, name: str) -> str:
        """Ingest ``frame`` exactly as ``POST /datasets`` does (through a CSV file); the dataset id."""
        path = self.settings.tmp_dir / f"{name}-{uuid.uuid4().hex[:6]}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        return self.register(path)

    def register(self, path: Path) -> str:
        """A file (CSV, Parquet, image zip) registered as ``POST /datasets`` does; the dataset id."""
        return register_dataset(self.store, self.settings, path, path.name, Scope(DEFAULT_TEAM)).id

    def spec(self, dataset_id: str, **request: Any) -> SearchSpec:
        """Submit a job exactly as the API does, marked running; the search spec a worker would build."""
        with self.store.session() as session:
            job = create_job(session, self.settings, JobRequest(dataset_id=dataset_id, **request), Scope(DEFAULT_TEAM))
            session.flush()
            searches.mark_running(session, job.id)
            session.flush()
            return search_spec(job, catalogue.get_dataset(session, dataset_id), self.settings)

    def job(self, frame: pd.DataFrame, name: str, **request: Any) -> SearchSpec:
        """Upload and submit exactly as the API does; the search spec a worker would build."""
        return self.spec(self.upload(frame, name), **request)

    def save(self, trained: Any, spec: SearchSpec, name: str) -> Path:
        """A final model (``runner.TrainedModel``) saved as the worker saves it, under a name of its own."""
        from automl.registry import save_model

        return save_model(trained.model, trained.metadata(spec, "m"), self.settings.models_dir,
                          f"{name}-{time.monotonic_ns()}")

    def predict_held_out(self, trained: Any, spec: SearchSpec, name: str, held: pd.DataFrame
                         ) -> tuple[Any, np.ndarray | None, list[Any] | None]:
        """``predict_saved`` of a final model once saved (``save``)."""
        return predict_saved(self.save(trained, spec, name), held)


def per_table(names: list[str], one: Callable[[Workspace, Table], dict[str, Any]], out: Path,
              shown: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row) -> list[dict[str, Any]]:
    """``one(workspace, table)`` for each named table in one temporary workspace, each row printed
    (``shown`` of it) and all rows so far written to ``out`` after each table: a crash keeps the others."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as root:
        workspace = Workspace.create(Path(root))
        for name in names:
            rows.append(one(workspace, BY_NAME[name]))
            print(json.dumps(shown(rows[-1])), flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=1))
    return rows


def holdout_split(frame: pd.DataFrame, target: str, task: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to upload, held-out rows): 20 % held out, stratified by class for classification."""
    from sklearn.model_selection import train_test_split

    stratify = frame[target].astype(str) if task != "regression" else None
    fit, held = train_test_split(frame, test_size=HOLDOUT, random_state=seed, stratify=stratify)
    return fit.reset_index(drop=True), held.reset_index(drop=True)


def score(metric: str, task: str, y_true: pd.Series, predicted: Any, probabilities: np.ndarray | None,
          classes: list[Any] | None) -> float:
    """The benchmark's metric on held-out rows, from predictions in the user's label space."""
    from sklearn import metrics

    if metric == "r2":
        return float(metrics.r2_score(np.asarray(y_true, dtype="float64"), np.asarray(predicted, dtype="float64")))
    if metric == "accuracy":
        return float(metrics.accuracy_score(np.asarray(y_true).astype(str), np.asarray(predicted).astype(str)))
    if metric == "roc_auc":
        assert probabilities is not None and classes is not None
        positive = np.asarray(y_true).astype(str) == str(classes[-1])
        return float(metrics.roc_auc_score(positive, probabilities[:, -1]))
    if metric == "log_loss":
        assert probabilities is not None and classes is not None
        clipped = np.clip(probabilities, 1e-15, 1.0)  # float32 sums can pass 1 by an ulp
        return float(metrics.log_loss(np.asarray(y_true).astype(str), clipped / clipped.sum(axis=1, keepdims=True),
                                      labels=[str(c) for c in classes]))
    raise ValueError(f"unknown metric {metric}")


def score_blend(metric: str, task: str, y_true: pd.Series, parts: list[tuple[float, Any]],
                classes: list[Any] | None) -> float:
    """``score`` of several models' held-out outputs blended by weight: (weight, predictions) for a
    regression, (weight, probabilities) for a classifier, whose class is the blend's most probable."""
    blend = np.sum([w * np.asarray(output, dtype="float64") for w, output in parts], axis=0)
    if task == "regression":
        return score(metric, task, y_true, blend, None, None)
    assert classes is not None
    return score(metric, task, y_true, [classes[i] for i in blend.argmax(axis=1)], blend, classes)


def predict_saved(model_dir: Path, held: pd.DataFrame) -> tuple[Any, np.ndarray | None, list[Any] | None]:
    """(predictions, probabilities, classes) of a saved model on raw rows, through the serving code."""
    from automl.serving.adapters import chunk_to_inputs
    from automl.serving.predictor import Predictor

    predictor = Predictor(model_dir)
    inputs = chunk_to_inputs(held, predictor.features, first_row=1)
    output = predictor.call(inputs)
    if predictor.task == "regression":
        return output.reshape(-1), None, None
    classes = list(predictor.classes or [])
    if predictor.task == "binary":
        positive = output.reshape(-1)
        probabilities = np.stack([1 - positive, positive], axis=1)
    else:
        probabilities = output
    predicted = [classes[i] for i in probabilities.argmax(axis=1)]
    return predicted, probabilities, classes


def gbdt(task: str, target: str, fit: pd.DataFrame, held: pd.DataFrame, column_types: dict[str, str]
         ) -> tuple[Any, np.ndarray | None, list[Any] | None, float]:
    """Default scikit-learn HistGradientBoosting on the uploaded rows: (predictions, probabilities,
    classes, seconds). Categorical columns as pandas categories, as its docs recommend; a column of
    more categories than it takes (255: names, identifiers) keeps its 255 most frequent, the others
    read as missing; a column of dates as days since 1970."""
    import time

    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.drop(columns=[target])
        for column, kind in column_types.items():
            if column == target or column not in out:
                continue
            if kind == "datetime":  # as a user of gradient boosting would give it: a number of days
                out[column] = column_to_days(out[column])[0]
            elif kind == "categorical":
                counts = fit[column].dropna().astype(str).value_counts()
                categories = sorted(counts.index[:255])
                out[column] = pd.Categorical(out[column].astype(object).where(out[column].notna(), None)
                                             .map(lambda v: None if v is None else str(v)), categories=categories)
            else:
                out[column] = pd.to_numeric(out[column].astype(object), errors="coerce").astype("float64")
        return out

    started = time.perf_counter()
    if task == "regression":
        model: Any = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
        model.fit(features(fit), fit[target].to_numpy(dtype="float64"))
        predicted = model.predict(features(held))
        return predicted, None, None, time.perf_counter() - started
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    labels = fit[target].astype(str)
    model.fit(features(fit), labels)
    probabilities = model.predict_proba(features(held))
    classes = list(model.classes_)
    predicted = [classes[i] for i in probabilities.argmax(axis=1)]
    return predicted, probabilities, classes, time.perf_counter() - started


DIGITS = 1797  # scikit-learn's bundled digits


def digits_split(root: Path, seed: int = 0) -> tuple[Path, list[bytes], list[int]]:
    """(zip of 80 % of the digits as PNG class folders, the held-out 20 % as PNG bytes, their labels)."""
    import zipfile

    from sklearn.model_selection import train_test_split

    from tests.image_data import digit_images, png_bytes

    images, labels = digit_images(DIGITS)
    fit, held = train_test_split(np.arange(DIGITS), test_size=HOLDOUT, random_state=seed, stratify=labels)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"digits-{seed}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in fit:
            archive.writestr(f"digits/{labels[i]}/{i:04d}.png", png_bytes(images[i]))
    return path, [png_bytes(images[i]) for i in held], [labels[i] for i in held]


def image_accuracy(model_dir: Path, files: list[bytes], labels: list[int]) -> float:
    """Held-out accuracy of a saved image model through the serving code (files as a client sends them)."""
    from automl.serving.adapters import image_files
    from automl.serving.predictor import Predictor

    predictor = Predictor(model_dir)
    predicted: list[Any] = []
    for start in range(0, len(files), 200):  # a request takes at most 256 images
        batch = image_files(predictor, [(f"{i}.png", data) for i, data in enumerate(files[start:start + 200])])
        predicted += predictor.predict(batch)[0]
    return float(np.mean([str(p) == str(t) for p, t in zip(predicted, labels, strict=True)]))
