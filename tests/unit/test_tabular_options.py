"""The search-space options for real tables: numeric transforms and embeddings, categorical
embeddings, label smoothing and regression target transforms, each checked against what it
promises, inside a model saved and reloaded in safe mode."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri

from automl.hypermodels.mlp import TabularMLP
from automl.hypermodels.narrowing import normalize_overrides
from automl.hypermodels.training import SmoothedSparseCrossentropy, make_dataset, task_head
from automl.preprocessing.features import MAX_CODE_INPUTS, fit_features, frame_to_inputs, quantile_knots, robust_scale
from automl.preprocessing.layers import Encoding, build_inputs
from automl.preprocessing.targets import OUTPUT_MARGIN, TargetTransform, choose
from automl.search.defaults import (
    default_batch_size,
    default_max_epochs,
    default_patience,
    passes_per_epoch,
    training_rows,
)

RNG = np.random.default_rng(0)


def _roundtrip(model: keras.Model, tmp_path: Path) -> keras.Model:
    path = tmp_path / "m.keras"
    model.save(path)
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def _frame(rows: int = 400) -> pd.DataFrame:
    skewed = RNG.lognormal(0, 1, rows)
    skewed[:5] = np.nan
    return pd.DataFrame({
        "skewed": skewed,
        "flag": RNG.integers(0, 2, rows).astype(float),
        "wide": [f"k{i % 20}" for i in range(rows)],
        "narrow": RNG.choice(["a", "b", "c"], rows),
        "y": RNG.normal(size=rows),
    })


TYPES = {"skewed": "numeric", "flag": "numeric", "wide": "categorical", "narrow": "categorical", "y": "numeric"}


def test_statistics_for_every_transform_come_from_the_training_rows() -> None:
    values = np.array([0.0] * 70 + list(np.linspace(1, 10, 30)))
    knots, scores = quantile_knots(values)
    assert knots[0] == 0.0 and knots == sorted(set(knots))  # the 70 % of zeros collapse into one knot
    assert all(a < b for a, b in itertools.pairwise(scores))  # normal scores increase with the knots
    assert robust_scale(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(1 / 2.0)  # 1 / IQR
    assert robust_scale(np.array([0.0] * 9 + [4.0])) == pytest.approx(2 / 4.0)  # IQR 0: 2 / range
    specs = fit_features(_frame(), TYPES, {"y"})
    skewed = next(s for s in specs if s.name == "skewed")
    assert skewed.missing_indicator and len(skewed.knots) > 10 and skewed.median > 0


@pytest.mark.parametrize("transform", ["standard", "robust", "quantile"])
def test_numeric_transforms(transform: str, tmp_path: Path) -> None:
    frame = _frame()
    specs = fit_features(frame, TYPES, {"y"})
    inputs, features = build_inputs(specs, Encoding(numeric_transform=transform))
    model = _roundtrip(keras.Model(inputs, features), tmp_path)
    x = frame_to_inputs(frame, specs)
    out = np.asarray(model.predict_on_batch(x))
    skewed = frame["skewed"].to_numpy()
    column = out[:, 0]  # the first numeric column
    present = ~np.isnan(skewed)
    assert (column[~present] == 0).all()  # missing -> 0, with its indicator set
    spec = specs[0]
    if transform == "standard":
        expected = (skewed[present] - spec.mean) / spec.std
        assert column[present] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    elif transform == "robust":
        z = (skewed[present] - spec.median) * spec.robust_scale
        assert column[present] == pytest.approx(z / np.sqrt(1 + (z / 3) ** 2), rel=1e-4, abs=1e-4)
        assert np.abs(column).max() < 3.0  # outliers are smoothly clipped below 3
    else:
        # Quantile-to-normal: the training median maps to ~0, the transformed values look normal.
        assert np.median(column[present]) == pytest.approx(0.0, abs=0.05)
        assert np.std(column[present]) == pytest.approx(1.0, abs=0.15)
        order = np.argsort(skewed[present])
        assert (np.diff(column[present][order]) >= -1e-6).all()  # monotone
        expected_top = ndtri(1 - 0.5 / present.sum())
        assert column[present].max() == pytest.approx(expected_top, abs=0.05)


@pytest.mark.parametrize("embedding", ["periodic", "ple"])
def test_numeric_embeddings_cover_columns_with_three_or_more_values(embedding: str, tmp_path: Path) -> None:
    frame = _frame()
    specs = fit_features(frame, TYPES, {"y"})
    inputs, features = build_inputs(specs, Encoding(numeric_embedding=embedding, embedding_units=8))
    model = keras.Model(inputs, features)
    layer = model.get_layer("periodic_embedding" if embedding == "periodic" else "ple")
    assert layer.columns == [0]  # "skewed" only: "flag" has two values
    x = frame_to_inputs(frame, specs)
    reloaded = _roundtrip(model, tmp_path)
    assert np.allclose(np.asarray(model.predict_on_batch(x)), np.asarray(reloaded.predict_on_batch(x)), atol=1e-5)
    plain = build_inputs(specs)[1]
    assert features.shape[-1] == plain.shape[-1] + 8  # one 8-wide embedding


def test_ple_encodes_how_far_past_each_bin_edge_a_value_lies() -> None:
    from automl.preprocessing.layers import PiecewiseLinearEncoding

    layer = PiecewiseLinearEncoding([0], knots=[[0.0, 1.0, 3.0]], median=[1.0])
    out = np.asarray(layer(np.array([[-5.0], [0.5], [2.0], [9.0], [np.nan]], dtype="float32")))
    assert np.allclose(out[:, 0], [[0, 0], [0.5, 0], [1, 0.5], [1, 1], [1, 0]])


def test_category_embeddings_only_for_wide_columns() -> None:
    specs = fit_features(_frame(), TYPES, {"y"})
    model = keras.Model(*build_inputs(specs, Encoding(category_embedding=4)))
    names = {layer.name for layer in model.layers}
    assert "wide_embedding" in names and "narrow_embedding" not in names  # 20 categories vs 3
    one_hot = {layer.name for layer in keras.Model(*build_inputs(specs)).layers}
    assert "wide_embedding" not in one_hot


def _hypermodel(task: str, n_outputs: int = 1, **fixed: Any) -> TabularMLP:
    specs = fit_features(_frame(), TYPES, {"y"})
    return TabularMLP(specs, task, n_outputs, "val_log_loss" if task != "regression" else "val_rmse", "min",
                      patience=3, n_train=400, overrides=normalize_overrides(fixed, task))


def test_label_smoothing() -> None:
    model = _hypermodel("binary", label_smoothing=0.1).build(kt.HyperParameters())
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    model = _hypermodel("multiclass", 3, label_smoothing=0.2).build(kt.HyperParameters())
    assert isinstance(model.loss, SmoothedSparseCrossentropy)
    y_pred = np.array([[0.7, 0.2, 0.1]], dtype="float32")
    smoothed = np.array([[0.2 / 3 + 0.8, 0.2 / 3, 0.2 / 3]])
    expected = -(smoothed * np.log(y_pred)).sum()
    assert float(model.loss(np.array([[0]]), y_pred)) == pytest.approx(expected, rel=1e-5)
    # Trials are compared on plain log loss, which smoothing does not change.
    for task in ("binary", "multiclass"):
        _, _, metrics = task_head(task, 3, None, None, 0.2)
        assert "log_loss" in [m.name for m in metrics if not isinstance(m, str)]


@pytest.mark.parametrize("kind", ["none", "log1p", "quantile"])
def test_target_transform_round_trip(kind: str) -> None:
    y = RNG.lognormal(3, 1.2, size=(500, 1)).astype("float32")
    transform = TargetTransform.fit(kind, y)
    forward = np.asarray(transform.forward(y), dtype="float64")
    assert forward.reshape(-1) == pytest.approx(transform.forward_numpy(y).reshape(-1), rel=1e-4, abs=1e-4)
    back = np.asarray(transform.inverse(forward), dtype="float64")
    assert back.reshape(-1) == pytest.approx(y.reshape(-1).astype("float64"), rel=1e-3)
    # Just outside the training range (within the margin): still invertible.
    beyond = np.array([[y.max() + 0.05 * (y.max() - y.min())]], dtype="float32")
    assert float(np.asarray(transform.inverse(transform.forward(beyond)))[0, 0]) == pytest.approx(
        float(beyond[0, 0]), rel=1e-3)
    # Far outside it, an answer stops at the range widened by the margin, above and below.
    top, bottom = y.max() + OUTPUT_MARGIN * (y.max() - y.min()), y.min() - OUTPUT_MARGIN * (y.max() - y.min())
    far = np.array([[float(transform.forward_numpy(y.max() * 30))], [-1e6]], dtype="float32")
    answered = np.asarray(transform.inverse(far), dtype="float64").reshape(-1)
    assert answered[0] == pytest.approx(top, rel=1e-3)
    assert answered[1] == pytest.approx(max(bottom, 0.0) if kind == "log1p" else bottom, rel=1e-3, abs=1e-3)


def test_a_log1p_model_never_answers_below_zero_and_keeps_learning_from_there() -> None:
    """A zero-inflated target (most rows 0, as a spending share): the output layer keeps answers at 0
    or above, and a network whose output is below the floor still gets a gradient back up. Before,
    the clip and the loss's clamp both stopped it, and whole trials stalled answering negative values."""
    import tensorflow as tf

    from automl.hypermodels.training import StandardizedLoss
    from automl.preprocessing.layers import TargetOutput

    y = np.where(RNG.random(2000) < 0.6, 0.0, RNG.gamma(2.0, 0.01, 2000)).astype("float32").reshape(-1, 1)
    transform = TargetTransform.fit("log1p", y)
    assert transform.low == 0.0  # the range widened below 0 stops at the floor: the output layer must not go under
    output = TargetOutput(transform.to_dict())
    loss = StandardizedLoss("mse", transform=transform.to_dict())
    below = (transform.low - transform.mean) / transform.std - 1.0  # a standardised output under everything
    z = tf.Variable(np.full((4, 1), below, dtype="float32"))
    truth = np.array([[0.0], [0.01], [0.05], [0.1]], dtype="float32")
    with tf.GradientTape() as tape:
        answered = output(z)
        value = loss(truth, answered)
    assert np.asarray(answered) == pytest.approx(0.0)  # at the floor, not negative
    gradient = np.asarray(tape.gradient(value, z)).reshape(-1)
    assert gradient[0] == pytest.approx(0.0, abs=1e-6)  # the row whose answer 0 is right
    assert (gradient[1:] < 0).all()  # the others pull the output up
    above = np.asarray(output(np.array([[0.5]], dtype="float32")))  # inside the range: unchanged
    assert float(above[0, 0]) == pytest.approx(float(np.expm1(0.5 * transform.std + transform.mean)), rel=1e-5)
    far = np.asarray(output(np.array([[1e8]], dtype="float32")))  # far above: the top of the range, exactly
    assert float(far[0, 0]) == pytest.approx(float(np.expm1(transform.high)), rel=1e-5)

def test_automatic_target_transform() -> None:
    assert choose(RNG.lognormal(3, 1.2, 1000)) == "log1p"  # prices, counts: >= 0 and skewed right
    assert choose(RNG.normal(50, 5, 1000)) == "none"
    assert choose(RNG.lognormal(3, 1.2, 1000) - 100) == "none"  # negative values: never log1p


def test_regression_learns_on_the_transformed_scale_and_answers_in_units(tmp_path: Path) -> None:
    """A log-normal target (prices): the model trains with log1p and its saved form answers in units."""
    # Its own weights' seed and 80 epochs: unseeded, the starting weights came from whatever the tests before
    # it had drawn, and after 40 epochs R^2 in units ranged 0.905-0.986 with the start (the log-normal tail
    # weighs heavily in units); after 80, 0.954-0.991 over seeds 0-4 on two draws of the rows.
    keras.utils.set_random_seed(0)
    frame = pd.DataFrame({"z": RNG.normal(size=800), "noise": RNG.normal(size=800)})
    y = (100 * np.exp(0.8 * frame["z"].to_numpy())).astype("float32").reshape(-1, 1)
    specs = fit_features(frame, {"z": "numeric", "noise": "numeric"}, set())
    transforms = {kind: TargetTransform.fit(kind, y) for kind in ("none", "log1p", "quantile")}
    hypermodel = TabularMLP(specs, "regression", 1, "val_rmse", "min", patience=30, n_train=800,
                            overrides=normalize_overrides({"target_transform": "log1p", "num_layers": 2,
                                                           "units": 64, "learning_rate": 0.003}, "regression"),
                            target_transforms=transforms)
    model = hypermodel.build(kt.HyperParameters())
    assert model.get_layer("prediction").get_config()["transform"]["kind"] == "log1p"
    x = frame_to_inputs(frame, specs)
    model.fit(make_dataset(x, y, 64, shuffle_seed=0), epochs=80, verbose=0)
    reloaded = _roundtrip(model, tmp_path)
    predicted = np.asarray(reloaded.predict_on_batch(x)).reshape(-1)
    truth = y.reshape(-1)
    r2 = 1 - ((predicted - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
    assert r2 > 0.95
    assert np.median(predicted) == pytest.approx(np.median(truth), rel=0.1)  # in units, not log units


def test_in_memory_training_rows_run_inline_on_one_thread_in_a_fixed_shuffle() -> None:
    """On a CPU the pipeline adds no thread pool, prefetching or autotuning of its own (they competed
    with a trial's threads when two trials shared a machine). It shuffles row numbers and gathers each
    batch: the batches are those of shuffling whole rows with the same seed (as it did before), and
    each row's features, label and weight stay together."""
    import tensorflow as tf

    x = {"a": np.arange(100, dtype="float32").reshape(-1, 1), "name": np.array([[f"r{i}"] for i in range(100)])}
    y = 10 * np.arange(100, dtype="float32").reshape(-1, 1)
    weights = 100 * np.arange(100, dtype="float32")
    dataset = make_dataset(x, y, 32, shuffle_seed=3, sample_weight=weights, passes=2)
    options = dataset.options()
    assert options.threading.private_threadpool_size == 1 and options.threading.max_intra_op_parallelism == 1
    assert options.autotune.enabled is False
    batches = list(dataset)
    assert len(batches) == 7  # 200 rows in batches of 32
    for features, label, weight in batches:
        a = features["a"].numpy().ravel()
        assert (label.numpy().ravel() == 10 * a).all() and (weight.numpy() == 100 * a).all()
        assert [n.decode() for n in features["name"].numpy().ravel()] == [f"r{int(v)}" for v in a]
    rows = tf.data.Dataset.from_tensor_slices(x["a"]).shuffle(100, seed=3, reshuffle_each_iteration=True).repeat(2)
    assert [b[0]["a"].numpy().ravel().tolist() for b in batches] == [
        b.numpy().ravel().tolist() for b in rows.batch(32)]
    again = [b[1].numpy().ravel().tolist() for b in make_dataset(x, y, 32, shuffle_seed=3, passes=2)]
    assert again == [b[1].numpy().ravel().tolist() for b in batches]
    assert sorted(v for batch in again for v in batch) == sorted([10.0 * i for i in range(100)] * 2)


def test_training_budgets_follow_the_rows() -> None:
    assert default_batch_size(100) == 32 and default_batch_size(4000) == 256 and default_batch_size(10**6) == 512
    assert passes_per_epoch(84) > 1 and passes_per_epoch(20_000) == 1  # tiny tables: several passes an epoch
    assert default_max_epochs(300) > default_max_epochs(30_000)
    assert 5 <= default_patience(default_max_epochs(300)) <= 20
    # A mid-size table may train long enough to learn lookups (star: 0.855 at 80 passes, 0.909 at 160).
    assert default_max_epochs(3_200) * passes_per_epoch(3_200) >= 150
    assert default_max_epochs(100_000) * passes_per_epoch(100_000) >= 80
    # The defaults are taken from the training split of the rows, as the search will split them (the
    # split rounds each part, and each class when stratified: within a row or two).
    from automl.datasets.targets import split_rows

    for n in (150, 1_000, 5_748):
        assert abs(training_rows(n) - len(split_rows(n, seed=0).train)) <= 2


def test_whole_number_columns_get_a_one_hot_view(tmp_path: Path) -> None:
    from automl.preprocessing.features import integer_codes
    from automl.preprocessing.layers import ValueIndicators

    assert integer_codes(np.array([3.0, 7.0, 3.0, 9.0, 7.0, 9.0])) == [3.0, 7.0, 9.0]  # ids, codes, counts
    assert integer_codes(np.array([0.5, 1.0, 2.0, 0.5])) == []  # not whole numbers
    assert integer_codes(np.array([0.0, 1.0] * 5)) == []  # two values: the numeric input says it all
    communes = np.arange(1, 195, dtype=float).repeat(5)  # ids of places or groups often run past 100
    assert integer_codes(communes) == [float(v) for v in range(1, 195)]
    assert integer_codes(np.arange(300, dtype=float).repeat(2)) == []  # too many values
    assert integer_codes(np.arange(10, dtype=float)) == []  # each value seen once: nothing to learn per value
    layer = ValueIndicators([3.0, 7.0, 9.0])
    out = np.asarray(layer(np.array([[7.0], [4.0], [np.nan]], dtype="float32")))
    assert out.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]  # unseen and missing: no indicator

    # Pixels uploaded as columns: each column's 256 values are codes, but not 200,000 inputs of them.
    pixels = pd.DataFrame(RNG.integers(0, 256, (4000, 12)).astype(float), columns=[f"p{i}" for i in range(12)])
    pixels["few"] = RNG.integers(0, 5, 4000).astype(float)
    limited = fit_features(pixels, dict.fromkeys(pixels.columns, "numeric"), set())
    assert [len(s.codes) for s in limited] == [256] * 3 + [0] * 9 + [5]  # 1,024 at most; fewest codes first
    assert sum(len(s.codes) for s in limited) <= MAX_CODE_INPUTS

    frame = pd.DataFrame({"school": RNG.integers(1, 30, 400).astype(float), "y": RNG.normal(size=400)})
    specs = fit_features(frame, {"school": "numeric", "y": "numeric"}, {"y"})
    assert len(specs[0].codes) == 29
    with_codes = keras.Model(*build_inputs(specs, Encoding(one_hot_integers=True)))
    assert with_codes.get_layer("school_codes").values == specs[0].codes
    assert with_codes.output.shape[-1] == keras.Model(*build_inputs(specs)).output.shape[-1] + 29
    reloaded = _roundtrip(with_codes, tmp_path)
    x = frame_to_inputs(frame, specs)
    assert np.allclose(np.asarray(reloaded.predict_on_batch(x)), np.asarray(with_codes.predict_on_batch(x)))


def test_options_a_table_gives_nothing_to_act_on_are_not_searched() -> None:
    # _frame: no whole-number codes, one categorical column wider than the one-hot limit.
    declared = kt.HyperParameters()
    _hypermodel("regression").build(declared)
    assert "one_hot_integers" not in declared.values  # a grid would otherwise double over it
    assert {"numeric_embedding", "category_embedding", "numeric_transform"} <= set(declared.values)

    frame = pd.DataFrame({"code": RNG.integers(1, 6, 400).astype(float), "narrow": RNG.choice(["a", "b"], 400),
                          "y": RNG.normal(size=400)})
    specs = fit_features(frame, {"code": "numeric", "narrow": "categorical", "y": "numeric"}, {"y"})
    declared = kt.HyperParameters()
    TabularMLP(specs, "regression", 1, "val_rmse", "min", patience=3, n_train=400).build(declared)
    assert "one_hot_integers" in declared.values and "category_embedding" not in declared.values

    only_categories = fit_features(frame[["narrow", "y"]], {"narrow": "categorical", "y": "numeric"}, {"y"})
    declared = kt.HyperParameters()
    TabularMLP(only_categories, "regression", 1, "val_rmse", "min", patience=3, n_train=400).build(declared)
    assert not {"numeric_transform", "numeric_embedding", "embedding_units", "one_hot_integers"} & set(declared.values)
