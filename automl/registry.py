"""The model registry on disk: one folder per model with the ``.keras`` file and its metadata.

A folder appears complete or not at all (written to a staging name, then renamed). Models
are only ever loaded from here, never from a client, and with Keras ``safe_mode=True``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
SAVEDMODEL_ARCHIVE = "savedmodel.zip"
SAVEDMODEL_VERSION = "1"


def save_model(model: Any, metadata: dict[str, Any], models_dir: Path, model_id: str) -> Path:
    final = models_dir / model_id
    staging = models_dir / f".staging-{model_id}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model.save(staging / MODEL_FILE)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def read_metadata(model_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((model_dir / METADATA_FILE).read_text())
    return data


def register_custom_objects() -> None:
    """Make the service's own layers known to Keras (preprocessing, target transforms, ensembles,
    TabM's members, temperature scaling), as loading a downloaded ``.keras`` file needs:
    ``from automl.registry import register_custom_objects``."""
    import automl.hypermodels.calibration
    import automl.hypermodels.ensemble
    import automl.hypermodels.members
    import automl.preprocessing.layers  # noqa: F401


def load_keras_model(model_dir: Path) -> Any:
    import keras

    register_custom_objects()
    return keras.saving.load_model(model_dir / MODEL_FILE, safe_mode=True, compile=False)


def saved_model_archive(model_dir: Path) -> Path:
    """The model exported as a TensorFlow SavedModel, zipped as ``1/saved_model.pb ...``.

    Unzipped into a model base folder it is version 1 for TensorFlow Serving. Its
    ``serving_default`` signature takes one ``(None, 1)`` tensor per input column (float32
    for numbers, NaN for missing; string for categories) and returns the model's outputs
    (probabilities, or the regression value). Exported once, on first request, atomically.
    """
    target = model_dir / SAVEDMODEL_ARCHIVE
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".export-") as staging:
        model = load_keras_model(model_dir)
        model.export(str(Path(staging) / SAVEDMODEL_VERSION), format="tf_saved_model", verbose=False)
        archive = shutil.make_archive(str(Path(staging) / "archive"), "zip", root_dir=staging,
                                      base_dir=SAVEDMODEL_VERSION)
        os.replace(archive, target)
    return target
