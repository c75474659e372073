"""TabM's members (``tabm_members``): the layers they promise, each member trained on its own loss, the
average answered in the target's units, and a TabM model saved, served, blended and exported as any other."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import pytest

from automl.hypermodels.ensemble import build_ensemble
from automl.hypermodels.members import MemberAverage, MemberScaling, MemberTrainedModel
from automl.hypermodels.mlp import TabularMLP
from automl.hypermodels.narrowing import normalize_overrides
from automl.hypermodels.space import describe
from automl.hypermodels.training import make_dataset
from automl.preprocessing.targets import TargetTransform
from automl.registry import save_model, saved_model_archive
from automl.serving.adapters import instances_to_inputs, json_instances
from automl.serving.predictor import Predictor
from tests.seed import CLASSES, ROW, SPECS

FEATURES = [s.to_dict() for s in SPECS]


def build(task: str = "binary", n_outputs: int = 1, members: int = 4,
          target_transforms: dict[str, TargetTransform] | None = None, **fixed: Any) -> tuple[keras.Model, Any, Any]:
    keras.utils.set_random_seed(0)
    fixed = {"tabm_members": members, "num_layers": 2, "units": 16, "shrink": 1.0, "dropout": 0.0, "batch_size": 16,
             **fixed}
    hypermodel = TabularMLP(SPECS, task, n_outputs, "val_loss", "min", patience=4, n_train=64,
                            overrides=normalize_overrides(fixed, task), target_mean=10.0, target_std=5.0,
                            target_transforms=target_transforms)
    hp = kt.HyperParameters()
    return hypermodel.build(hp), hp, hypermodel


def rows(n: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    table = [{"size": float(rng.normal(5, 2)), "flag": bool(i % 3), "colour name": ["red", "blue"][i % 2]}
             for i in range(n)]
    return instances_to_inputs(table, FEATURES)


def member_answers(model: keras.Model, x: dict[str, np.ndarray], layer: str = "member_heads") -> np.ndarray:
    inner = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(inner.predict(make_dataset(x, None, 1024), verbose=0))


def test_members_scale_their_own_copy_of_each_row_share_hidden_layers_and_have_a_head_each() -> None:
    model, _, _ = build("multiclass", 3, members=4, num_layers=2, units=16)
    assert isinstance(model, MemberTrainedModel)
    scale = np.asarray(model.get_layer("member_scaling").scale)
    assert scale.shape[0] == 4 and set(np.unique(scale)) == {-1.0, 1.0}  # random signs, as TabM-mini starts
    hidden = [layer for layer in model.layers if layer.name.startswith("dense_")]
    assert [tuple(layer.output.shape) for layer in hidden] == [(None, 4, 16), (None, 4, 16)]
    assert [tuple(layer.kernel.shape) for layer in hidden][1] == (16, 16)  # one kernel for the four members
    assert tuple(model.get_layer("member_heads").kernel.shape) == (4, 16, 3)  # one output layer per member
    assert isinstance(model.get_layer("probabilities"), MemberAverage)
    assert tuple(model.output.shape) == (None, 3)
    plain, _, _ = build("multiclass", 3, members=1)
    assert not isinstance(plain, MemberTrainedModel)
    assert not any(isinstance(layer, MemberScaling) for layer in plain.layers)


def test_each_member_trains_on_its_own_loss_and_validation_scores_their_average() -> None:
    model, _, _ = build("binary", members=4)
    x = rows()
    y = (x["size"] > 5).astype("float32")
    members = member_answers(model, x)[:, :, 0]  # (rows, members) probabilities
    average = np.asarray(model.predict(make_dataset(x, None, 1024), verbose=0))[:, 0]
    assert np.allclose(average, members.mean(axis=1), atol=1e-6)
    bce = keras.losses.BinaryCrossentropy()
    per_member = np.mean([float(bce(y, members[:, [k]])) for k in range(4)])
    of_average = float(bce(y, average[:, None]))
    assert per_member > of_average + 1e-3  # the two differ, so the test tells them apart

    batch = make_dataset(x, None, 1024).get_single_element()
    inputs = {key: keras.ops.convert_to_tensor(value) for key, value in batch.items()}
    answered = model(inputs, training=True)
    training_loss = float(model.compute_loss(x=inputs, y=y, y_pred=answered, training=True))
    assert training_loss == pytest.approx(per_member, rel=1e-4)
    assert float(model.compute_loss(x=inputs, y=y, y_pred=answered, training=False)) == pytest.approx(of_average,
                                                                                                        rel=1e-4)
    # Class weights reach every member's rows.
    weights = np.where(y > 0, 3.0, 1.0).astype("float32")
    weighted = float(model.compute_loss(x=inputs, y=y, y_pred=answered, sample_weight=weights, training=True))
    expected = np.mean([float(bce(y, members[:, [k]], sample_weight=weights)) for k in range(4)])
    assert weighted == pytest.approx(expected, rel=1e-4)


def test_a_tabm_fit_trains_and_its_history_reports_member_loss_and_averaged_metrics() -> None:
    model, hp, hypermodel = build("binary", members=4, learning_rate=0.01, lr_schedule="constant")
    x = rows(128)
    y = (x["size"] > 5).astype("float32")
    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), epochs=40).history
    assert history["val_loss"][-1] < history["val_loss"][0]
    # Training loss: the members' own losses, at least the loss of their average (log loss is convex).
    assert all(loss >= log_loss - 1e-6 for loss, log_loss in zip(history["loss"], history["log_loss"], strict=True))
    assert max(history["val_accuracy"]) >= 0.9, history["val_accuracy"]


def test_a_regression_members_answer_in_units_through_the_target_transform() -> None:
    y = np.exp(np.random.default_rng(1).normal(3.0, 1.0, 64)).astype("float32")
    transform = TargetTransform.fit("log1p", y)
    model, hp, hypermodel = build("regression", members=3, target_transform="log1p",
                                  target_transforms={"log1p": transform})
    x = rows()
    members = member_answers(model, x, "member_predictions")  # (rows, members, 1), each in the target's units
    average = np.asarray(model.predict(make_dataset(x, None, 1024), verbose=0))
    assert members.shape == (64, 3, 1) and np.all(members > -1.0)
    assert np.allclose(average, members.mean(axis=1), rtol=1e-5)
    hypermodel.fit(hp, model, x, y.reshape(-1, 1), epochs=2)  # the per-member loss runs on the transformed scale


def test_a_tabm_model_saves_serves_blends_and_exports_like_any_other(tmp_path: Path) -> None:
    model, hp, hypermodel = build("binary", members=4, dropout=0.2)
    x = rows()
    hypermodel.fit(hp, model, x, (x["size"] > 5).astype("float32"), epochs=2)
    metadata = {"task": "binary", "target": "label", "classes": CLASSES, "features": FEATURES}
    folder = save_model(model, metadata, tmp_path, "tabm")
    predictor = Predictor(folder)  # safe-mode load, compiled call
    assert isinstance(predictor.model, MemberTrainedModel)
    served = np.asarray(predictor.call(x))
    assert np.allclose(served, model.predict(make_dataset(x, None, 1024), verbose=0), atol=1e-5)
    # Monte Carlo dropout draws averages of the members, one probability per class.
    assert predictor.supports_uncertainty
    sampled = predictor.probabilities(json_instances(predictor, [ROW] * 3), mc_samples=20)
    assert sampled.mean.shape == (3, 2) and sampled.std is not None and float(np.max(sampled.std)) > 0

    plain, _, _ = build("binary", members=1)
    blend = build_ensemble([predictor.model, plain], [0.5, 0.5])
    expected = 0.5 * served + 0.5 * np.asarray(plain.predict(make_dataset(x, None, 1024), verbose=0))
    blended = Predictor(save_model(blend, {**metadata, "members": [{"trial_id": "0", "weight": 0.5},
                                                                   {"trial_id": "1", "weight": 0.5}]},
                                   tmp_path, "blend"))
    assert np.allclose(blended.call(x), expected, atol=1e-5)

    archive = saved_model_archive(folder)  # TensorFlow Serving export
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path / "exported")
    import tensorflow as tf

    signature = tf.saved_model.load(str(tmp_path / "exported" / "1")).signatures["serving_default"]
    answer = signature(**{key: tf.constant(value) for key, value in x.items()})
    assert np.allclose(np.asarray(next(iter(answer.values()))), served, atol=1e-5)


def test_the_search_space_documents_members_and_searches_the_affordable_counts() -> None:
    (entry,) = [hp for hp in describe("multiclass") if hp["name"] == "tabm_members"]
    assert entry["default"] == 1 and entry["choices"] == [1, 4, 8, 16, 32]
    assert entry["searched_by_default"] == [1, 4, 8, 16]
    with pytest.raises(ValueError, match="2 or more"):
        MemberScaling(1)


def test_members_combine_with_wide_deep_residual_blocks_and_multilabel_heads() -> None:
    model, hp, hypermodel = build("multilabel", 3, members=4, num_layers=3, residual=True, wide_deep=True)
    assert tuple(model.get_layer("wide_deep").output.shape)[:2] == (None, 4)  # each member's own inputs joined
    assert tuple(model.output.shape) == (None, 3)
    x = rows()
    y = np.stack([x["size"][:, 0] > 5, x["flag"][:, 0] > 0, x["size"][:, 0] > 4], axis=1).astype("float32")
    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), epochs=2).history
    assert np.isfinite(history["loss"]).all() and np.isfinite(history["val_loss"]).all()
