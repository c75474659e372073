"""Monte Carlo dropout in the predictor, and grid search that resumes from a reloaded project."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest

from automl.errors import UnsupportedForTask
from automl.search.tuners import ResumableGridSearchOracle
from automl.serving.adapters import json_instances
from automl.serving.predictor import Predictor

FEATURES = [{"name": "x", "key": "x", "kind": "numeric", "mean": 0.0, "std": 1.0, "missing_indicator": False,
             "vocabulary": []}]


def save(tmp_path: Path, dropout: float, task: str = "regression") -> Path:
    keras.utils.set_random_seed(1)
    x = keras.Input(shape=(1,), name="x", dtype="float32")
    h = keras.layers.Dense(64, activation="relu")(x)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(dropout)(h)
    out = keras.layers.Dense(1, activation="sigmoid" if task == "binary" else None)(h)
    model = keras.Model({"x": x}, out)
    model_dir = tmp_path / f"m{dropout}{task}"
    model_dir.mkdir()
    model.save(model_dir / "model.keras")
    metadata = {"task": task, "target": "y", "classes": [0, 1] if task == "binary" else None, "features": FEATURES}
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    return model_dir


def test_mc_dropout_mean_and_std(tmp_path: Path) -> None:
    predictor = Predictor(save(tmp_path, 0.5))
    instances = [{"x": 1.0}, {"x": -2.0}]
    plain, no_std = predictor.predict(json_instances(predictor, instances))
    assert no_std is None
    mean, std = predictor.predict(json_instances(predictor, instances), mc_samples=200)
    assert std is not None and all(s > 0 for s in std)
    # Dropout is unbiased in expectation: the MC mean is near the deterministic output.
    assert np.allclose(mean, plain, atol=4 * max(std) / np.sqrt(200) + 1e-3)


def test_batch_norm_stays_in_inference_mode_during_mc(tmp_path: Path) -> None:
    predictor = Predictor(save(tmp_path, 0.0))
    assert not predictor.supports_uncertainty
    with pytest.raises(UnsupportedForTask, match="no dropout"):
        predictor.predict(json_instances(predictor, [{"x": 1.0}]), mc_samples=10)
    # With dropout 0 but training=True, only batch norm could change the output: it must not.
    predictor.supports_uncertainty = True
    mean, std = predictor.predict(json_instances(predictor, [{"x": 1.0}, {"x": 3.0}]), mc_samples=5)
    assert std == pytest.approx([0.0, 0.0], abs=1e-6)
    assert mean == pytest.approx(predictor.predict(json_instances(predictor, [{"x": 1.0}, {"x": 3.0}]))[0], rel=1e-5)


def test_mc_probabilities_for_classifiers(tmp_path: Path) -> None:
    predictor = Predictor(save(tmp_path, 0.3, "binary"))
    out = predictor.probabilities(json_instances(predictor, [{"x": 0.5}]), mc_samples=50)
    assert out.std is not None and out.std.shape == (1, 2)
    assert out.mean.sum() == pytest.approx(1.0)


def test_grid_search_continues_from_a_reloaded_project(tmp_path: Path) -> None:
    def build(hp: kt.HyperParameters) -> keras.Model:
        hp.Choice("a", [1, 2, 3])
        hp.Choice("b", ["x", "y"])
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(loss="mse")
        return model

    seen = []
    x = np.zeros((4, 1), dtype="float32")
    for step in range(7):
        oracle = ResumableGridSearchOracle(objective="val_loss", max_trials=step + 1)
        tuner = kt.Tuner(oracle=oracle, hypermodel=build, directory=str(tmp_path), project_name="grid",
                         overwrite=False)
        before = len(tuner.oracle.trials)
        tuner.search(x, x, validation_data=(x, x), epochs=1, verbose=0)
        if len(tuner.oracle.trials) == before:
            break
        seen.append(tuple(sorted(tuner.oracle.trials[tuner.oracle.start_order[-1]].hyperparameters.values.items())))
    assert len(seen) == 6 and len(set(seen)) == 6  # every combination once, then exhausted
