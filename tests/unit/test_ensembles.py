"""Greedy ensemble selection, and an ensemble saved as one Keras model: save, safe-mode load,
compiled predictions, Monte Carlo dropout and SavedModel export."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from automl.hypermodels.ensemble import WeightedAverage, all_layers, build_ensemble
from automl.preprocessing.layers import build_inputs
from automl.registry import save_model, saved_model_archive
from automl.search.ensemble import MIN_PRIOR_WEIGHT, greedy_selection, loss, prior_share, shrink
from automl.serving.predictor import Predictor
from tests.seed import CLASSES, ROW, SPECS

RNG = np.random.default_rng(1)


def test_losses_follow_the_objective() -> None:
    y = np.array([0, 1, 1, 0])
    p = np.array([0.1, 0.9, 0.6, 0.4])
    assert loss("val_log_loss", "binary", y, p) == pytest.approx(-np.mean(np.log([0.9, 0.9, 0.6, 0.6])))
    assert loss("val_accuracy", "binary", y, p) == 0.0
    assert loss("val_auc", "binary", y, p) == pytest.approx(0.0)
    probs = np.array([[0.7, 0.3], [0.2, 0.8]])
    assert loss("val_log_loss", "multiclass", np.array([0, 1]), probs) == pytest.approx(-np.mean(np.log([0.7, 0.8])))
    assert loss("val_rmse", "regression", np.array([1.0, 3.0]), np.array([2.0, 3.0])) == pytest.approx(np.sqrt(0.5))
    assert loss("val_mae", "regression", np.array([1.0, 3.0]), np.array([2.0, 3.0])) == pytest.approx(0.5)


def test_complementary_models_are_blended_and_a_useless_one_is_left_out() -> None:
    truth = RNG.normal(size=400)
    a = truth + RNG.normal(scale=1.0, size=400)  # two equally good, independent errors: their mean halves the error
    b = truth + RNG.normal(scale=1.0, size=400)
    bad = truth + RNG.normal(scale=5.0, size=400)
    selection = greedy_selection({"a": a, "b": b, "bad": bad}, truth, "val_rmse", "regression", max_members=3)
    assert set(selection.weights) == {"a", "b"}
    assert selection.weights["a"] == pytest.approx(0.5, abs=0.15)
    assert sum(selection.weights.values()) == pytest.approx(1.0)
    assert selection.loss < 0.8 * selection.single_loss


def test_a_single_best_model_stays_alone() -> None:
    truth = RNG.normal(size=200)
    good = truth + RNG.normal(scale=0.1, size=200)
    worse = truth + RNG.normal(scale=3.0, size=200)
    selection = greedy_selection({"worse": worse, "good": good}, truth, "val_rmse", "regression", max_members=3)
    assert selection.weights == {"good": 1.0} and selection.loss == selection.single_loss


def test_at_most_max_members_distinct_trials() -> None:
    truth = RNG.normal(size=300)
    predictions = {str(i): truth + RNG.normal(scale=1.0, size=300) for i in range(6)}
    selection = greedy_selection(predictions, truth, "val_rmse", "regression", max_members=2)
    assert len(selection.weights) == 2


def test_few_validation_rows_shrink_the_choice_towards_the_two_best_trials() -> None:
    # A single "best" trial on 14 validation rows (airquality's) keeps 1 - 0.68 / 2 of the weight: the
    # two best trials share the prior's 0.68 equally.
    share = prior_share(14)
    assert share == pytest.approx(30 / 44)
    weights = shrink({"a": 1.0}, ["a", "b", "c"], rows=14, max_members=3)
    assert list(weights) == ["a", "b"]
    assert weights["a"] == pytest.approx(1 - share / 2) and weights["b"] == pytest.approx(share / 2)
    # A selected ensemble keeps its members; the prior adds to the two best, the total stays 1.
    weights = shrink({"c": 0.6, "a": 0.4}, ["a", "b", "c"], rows=90, max_members=3)
    share = prior_share(90)
    assert weights == pytest.approx({"c": 0.6 * (1 - share), "a": 0.4 * (1 - share) + share / 2, "b": share / 2})
    assert sum(weights.values()) == pytest.approx(1.0)


def test_many_validation_rows_leave_the_choice_as_it_was() -> None:
    # From about 270 validation rows on, the prior alone brings no trial in.
    assert prior_share(300) / 2 < MIN_PRIOR_WEIGHT
    weights = shrink({"a": 1.0}, ["a", "b"], rows=300, max_members=3)
    assert weights == {"a": 1.0}
    weights = shrink({"a": 0.5, "b": 0.5}, ["a", "b"], rows=5_000, max_members=3)
    assert weights == pytest.approx({"a": 0.5, "b": 0.5})


def test_shrinking_never_goes_past_the_ensemble_size() -> None:
    # The selection holds three trials, the prior's second best is a fourth: the lightest outside the
    # prior makes room for it.
    weights = shrink({"c": 0.5, "d": 0.3, "e": 0.2}, ["a", "b", "c", "d", "e"], rows=20, max_members=3)
    assert set(weights) == {"a", "b", "c"} and sum(weights.values()) == pytest.approx(1.0)
    assert shrink({"a": 1.0}, ["a", "b"], rows=10, max_members=1) == {"a": 1.0}


def _member(seed: int, dropout: float) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs, features = build_inputs(SPECS)
    hidden = keras.layers.Dense(8, activation="tanh")(features)
    hidden = keras.layers.BatchNormalization()(hidden)
    if dropout:
        hidden = keras.layers.Dropout(dropout)(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden))


def test_an_ensemble_is_one_model_that_serves_like_any_other(tmp_path: Path) -> None:
    members = [_member(1, 0.0), _member(2, 0.3)]
    from automl.serving.adapters import instances_to_inputs, json_instances

    features = [s.to_dict() for s in SPECS]
    x = instances_to_inputs([ROW, {**ROW, "size": None, "colour name": "never seen"}], features)
    outputs = [np.asarray(m.predict_on_batch(x)) for m in members]
    model = build_ensemble(members, [0.75, 0.25])
    assert isinstance(model.get_layer("ensemble"), WeightedAverage)
    metadata = {"task": "binary", "target": "label", "classes": CLASSES, "features": features,
                "members": [{"trial_id": "0", "weight": 0.75}, {"trial_id": "1", "weight": 0.25}]}
    folder = save_model(model, metadata, tmp_path, "ensemble")

    predictor = Predictor(folder)  # safe-mode load, compiled call
    expected = 0.75 * outputs[0] + 0.25 * outputs[1]
    assert np.allclose(predictor.call(x), expected, atol=1e-5)
    probabilities = predictor.probabilities(json_instances(predictor, [ROW]), mc_samples=None).mean
    assert np.allclose(probabilities[0], [1 - expected[0, 0], expected[0, 0]], atol=1e-5)
    # Monte Carlo dropout reaches the member that has dropout; batch norm stays on its statistics.
    assert predictor.supports_uncertainty
    assert all(not layer.trainable for layer in all_layers(predictor.model)
               if isinstance(layer, keras.layers.BatchNormalization))
    sampled = predictor.probabilities(json_instances(predictor, [ROW] * 4), mc_samples=50)
    assert sampled.std is not None and float(np.max(sampled.std)) > 0

    archive = saved_model_archive(folder)  # TensorFlow Serving export of the whole ensemble
    with zipfile.ZipFile(archive) as zipped:
        assert "1/saved_model.pb" in zipped.namelist()
        zipped.extractall(tmp_path / "exported")
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "exported" / "1")).signatures["serving_default"]
    answer = served(**{key: tf.constant(value) for key, value in x.items()})
    assert np.allclose(np.asarray(next(iter(answer.values()))), expected, atol=1e-5)
