"""A job's training data: rows with a target, stratified train/validation/test split, inputs.

The split is computed once per job and saved next to the tuner state, so every trial and
the final model see exactly the same rows, and the test split never reaches the search.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from automl.datasets.images import IMAGE_COLUMN, IMAGES_DIR
from automl.datasets.ingest import load_frame
from automl.datasets.targets import Split, encode_labels, encode_multilabel, split_rows
from automl.hypermodels.training import EVAL_BATCH_SIZE, make_dataset
from automl.preprocessing import images
from automl.preprocessing.features import FeatureSpec, fit_features, frame_to_inputs
from automl.preprocessing.targets import TARGET_TRANSFORMS, TargetTransform
from automl.preprocessing.targets import choose as choose_target_transform
from automl.search.defaults import default_batch_size, passes_per_epoch
from automl.search.spec import SearchSpec

SPLIT_FILE = "split.npz"


@dataclass
class PreparedData:
    features: list[FeatureSpec]
    x_train: dict[str, np.ndarray]
    y_train: np.ndarray
    x_val: dict[str, np.ndarray]
    y_val: np.ndarray
    x_test: dict[str, np.ndarray]
    y_test: np.ndarray
    target_mean: float
    target_std: float
    split_sizes: dict[str, int]
    # (x, y, batch_size, shuffle_seed=, sample_weight=) -> tf.data: arrays for tables, image files for images
    pipeline: Any = make_dataset
    eval_batch_size: int = EVAL_BATCH_SIZE
    # Regression: every target transform the search may pick, fitted on the training targets.
    target_transforms: dict[str, TargetTransform] = field(default_factory=dict)
    # Hyperparameter defaults that depend on the data (batch size, the automatic target transform).
    defaults: dict[str, Any] = field(default_factory=dict)
    passes_per_epoch: int = 1  # small tables: an epoch passes over the training rows several times


def _load_or_make_split(spec: SearchSpec, n_rows: int, labels: np.ndarray | None) -> Split:
    path = spec.work_dir / SPLIT_FILE
    if path.exists():
        saved = np.load(path)
        return Split(train=saved["train"], validation=saved["validation"], test=saved["test"])
    split = split_rows(n_rows, spec.seed, labels)
    spec.work_dir.mkdir(parents=True, exist_ok=True)
    # The job's lanes may get here at the same moment: each writes its own staging file, and the
    # rename makes one of the identical splits (the seed fixes it) the job's, whole.
    with tempfile.NamedTemporaryFile(dir=spec.work_dir, prefix=".split-", suffix=".npz", delete=False) as staging:
        try:
            np.savez(staging, train=split.train, validation=split.validation, test=split.test)
        except BaseException:
            os.unlink(staging.name)  # a failed write (a full disk) leaves no staging file behind
            raise
    os.replace(staging.name, path)
    return split


def _targets(frame: pd.DataFrame, spec: SearchSpec) -> np.ndarray:
    if spec.task == "regression":
        return np.asarray(frame[spec.target], dtype="float32").reshape(-1, 1)
    assert spec.classes is not None
    if spec.task == "multilabel":
        return encode_multilabel(frame, spec.targets, spec.classes)
    codes = encode_labels(frame[spec.target], spec.classes)
    return codes.astype("float32").reshape(-1, 1) if spec.task == "binary" else codes


def _image_paths(frame: pd.DataFrame, spec: SearchSpec) -> dict[str, np.ndarray]:
    folder = spec.dataset_path.parent / IMAGES_DIR
    return {images.IMAGE_INPUT: np.array([str(folder / name) for name in frame[IMAGE_COLUMN]])}


def prepare(spec: SearchSpec) -> PreparedData:
    """The job's split, targets and inputs: column arrays for tables, image file paths for images
    (the pixels are read batch by batch while training)."""
    frame = load_frame(spec.dataset_path)
    frame = frame[frame[spec.targets].notna().all(axis=1)].reset_index(drop=True)
    stratify = spec.task in ("binary", "multiclass")
    labels = encode_labels(frame[spec.target], spec.classes) if stratify and spec.classes is not None else None
    split = _load_or_make_split(spec, len(frame), labels)
    train, val, test = (frame.iloc[idx] for idx in (split.train, split.validation, split.test))
    y_train = _targets(train, spec)
    target_mean, target_std = 0.0, 1.0
    transforms: dict[str, TargetTransform] = {}
    defaults: dict[str, Any] = {}
    if spec.task == "regression":
        target_mean = float(y_train.mean())
        target_std = float(y_train.std()) or 1.0
        transforms = {kind: TargetTransform.fit(kind, y_train) for kind in TARGET_TRANSFORMS
                      if kind != "log1p" or float(y_train.min()) >= 0}
        defaults["target_transform"] = choose_target_transform(y_train)
    passes = 1
    if spec.kind == "tabular":
        defaults["batch_size"] = default_batch_size(len(split.train))
        passes = passes_per_epoch(len(split.train))
    common: dict[str, Any] = {"y_train": y_train, "y_val": _targets(val, spec), "y_test": _targets(test, spec),
              "target_mean": target_mean, "target_std": target_std, "split_sizes": split.sizes(),
              "target_transforms": transforms, "defaults": defaults, "passes_per_epoch": passes}
    if spec.kind == "image":
        assert spec.image_size is not None
        return PreparedData(
            features=[], x_train=_image_paths(train, spec), x_val=_image_paths(val, spec),
            x_test=_image_paths(test, spec),
            pipeline=partial(images.image_dataset, size=spec.image_size, channels=spec.channels),
            eval_batch_size=images.EVAL_BATCH_SIZE, **common,
        )
    features = fit_features(train, spec.column_types, set(spec.targets))
    return PreparedData(
        features=features,
        x_train=frame_to_inputs(train, features),
        x_val=frame_to_inputs(val, features),
        x_test=frame_to_inputs(test, features),
        **common,
    )
