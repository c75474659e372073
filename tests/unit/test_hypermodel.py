"""Fixed hyperparameter values -> the layers, loss, optimizer, schedule and weights they promise."""

from __future__ import annotations

import itertools
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import pytest

from automl.hypermodels.mlp import TabularMLP
from automl.hypermodels.narrowing import normalize_overrides
from automl.hypermodels.space import is_active
from automl.hypermodels.training import StandardizedLoss
from automl.preprocessing.features import FeatureSpec

FEATURES = [
    FeatureSpec(name="x", key="x", kind="numeric", mean=1.0, std=2.0),
    FeatureSpec(name="c", key="c", kind="categorical", vocabulary=["a", "b"]),
]


def build(task: str = "binary", n_outputs: int = 1, **fixed: Any) -> tuple[keras.Model, kt.HyperParameters, TabularMLP]:
    hypermodel = TabularMLP(FEATURES, task, n_outputs, "val_loss", "min", patience=4, n_train=640,
                            overrides=normalize_overrides(fixed, task), target_mean=10.0, target_std=5.0)
    hp = kt.HyperParameters()
    return hypermodel.build(hp), hp, hypermodel


def layers(model: keras.Model, kind: type) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, kind)]


def dense_hidden(model: keras.Model) -> list[keras.layers.Dense]:
    return [layer for layer in layers(model, keras.layers.Dense) if layer.name.startswith("dense_")]


def test_depth_and_funnel_widths() -> None:
    model, hp, _ = build(num_layers=3, units=256, width_schedule="funnel", shrink=0.5)
    assert [d.units for d in dense_hidden(model)] == [256, 128, 64]
    assert "units_1" not in hp.values  # free widths are ruled out, so the tuner never sees them
    _, hp, _ = build(num_layers=3, units=256, shrink=0.5)
    assert "units_1" in hp.values and not is_active("units_1", hp.values)  # searchable, unused here
    model, _, _ = build(num_layers=4, units=32, shrink=0.25)
    assert [d.units for d in dense_hidden(model)] == [32, 8, 8, 8]  # never below 8 units


def test_free_widths() -> None:
    model, _, _ = build(num_layers=3, units=64, width_schedule="free", units_1=512, units_2=16)
    assert [d.units for d in dense_hidden(model)] == [64, 512, 16]


def test_residual_blocks_are_batch_normalised_and_wide_deep_concatenates_inputs() -> None:
    model, _, _ = build(num_layers=3, units=64, shrink=1.0, residual=True, batch_norm=False, wide_deep=True)
    names = [layer.name for layer in model.layers]
    assert {"residual_1", "residual_2", "batch_norm_1", "batch_norm_2"} <= set(names)
    assert "batch_norm_0" not in names and "shortcut_1" not in names  # same width: identity shortcut
    wide = model.get_layer("wide_deep")
    assert isinstance(wide, keras.layers.Concatenate)
    assert model.get_layer("features").output in wide.input
    model, _, _ = build(num_layers=2, units=64, shrink=0.5, residual=True)
    assert isinstance(model.get_layer("shortcut_1"), keras.layers.Dense)  # projection when widths differ


@pytest.mark.parametrize(
    ("activation", "initializer", "layer_type"),
    [("relu", "HeNormal", keras.layers.Activation), ("leaky_relu", "HeNormal", keras.layers.LeakyReLU),
     ("prelu", "HeNormal", keras.layers.PReLU), ("elu", "HeNormal", keras.layers.Activation),
     ("selu", "LecunNormal", keras.layers.Activation), ("gelu", "GlorotUniform", keras.layers.Activation),
     ("swish", "GlorotUniform", keras.layers.Activation), ("tanh", "GlorotUniform", keras.layers.Activation),
     ("sigmoid", "GlorotUniform", keras.layers.Activation)],
)
def test_activation_and_matching_initializer(activation: str, initializer: str, layer_type: type) -> None:
    model, _, _ = build(activation=activation, num_layers=1, dropout=0.2)
    dense = dense_hidden(model)[0]
    assert type(dense.kernel_initializer).__name__ == initializer
    act = model.get_layer("activation_0")
    assert isinstance(act, layer_type)
    if layer_type is keras.layers.Activation:
        assert act.get_config()["activation"] == {"swish": "silu"}.get(activation, activation)
    dropout = model.get_layer("dropout_0")
    assert type(dropout) is keras.layers.Dropout  # plain dropout after selu too: alpha dropout generalised worse
    assert dropout.rate == pytest.approx(0.2)


def test_regularization() -> None:
    model, _, _ = build(num_layers=2, l1=1e-4, l2=1e-3, activity_l2=1e-5, max_norm=3.0, batch_norm=True,
                        dropout=0.0)
    for dense in dense_hidden(model):
        assert isinstance(dense.kernel_regularizer, keras.regularizers.L1L2)
        assert dense.kernel_regularizer.l1 == pytest.approx(1e-4) and dense.kernel_regularizer.l2 == pytest.approx(1e-3)
        assert isinstance(dense.activity_regularizer, keras.regularizers.L2)
        assert isinstance(dense.kernel_constraint, keras.constraints.MaxNorm)
        assert dense.kernel_constraint.max_value == 3.0
        assert not dense.use_bias
    assert len(layers(model, keras.layers.BatchNormalization)) == 2
    assert not layers(model, keras.layers.Dropout)
    model, _, _ = build(num_layers=1, l1=0.0, l2=0.0, activity_l2=0.0, max_norm=0.0)
    dense = dense_hidden(model)[0]
    assert dense.kernel_regularizer is None and dense.activity_regularizer is None and dense.kernel_constraint is None


@pytest.mark.parametrize(
    ("name", "cls"),
    [("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW), ("nadam", keras.optimizers.Nadam),
     ("rmsprop", keras.optimizers.RMSprop), ("sgd", keras.optimizers.SGD)],
)
def test_optimizers(name: str, cls: type) -> None:
    extra: dict[str, Any] = {"momentum": 0.5, "nesterov": False} if name == "sgd" else {}
    if name == "adamw":
        extra["weight_decay"] = 1e-3
    model, hp, _ = build(optimizer=name, learning_rate=0.02, lr_schedule="constant", **extra)
    assert type(model.optimizer) is cls
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)
    if name == "sgd":
        assert model.optimizer.momentum == 0.5 and model.optimizer.nesterov is False
    else:
        assert not is_active("momentum", hp.values) and not is_active("nesterov", hp.values)
    if name == "adamw":
        assert model.optimizer.weight_decay == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("schedule", "cls", "staircase"),
    [("step", keras.optimizers.schedules.ExponentialDecay, True),
     ("exponential", keras.optimizers.schedules.ExponentialDecay, False),
     ("inverse_time", keras.optimizers.schedules.InverseTimeDecay, False)],
)
def test_decaying_schedules(schedule: str, cls: type, staircase: bool) -> None:
    model, _, _ = build(lr_schedule=schedule, learning_rate=0.01, lr_decay_rate=0.5, lr_decay_epochs=3,
                        batch_size=64, optimizer="adam")
    lr = model.optimizer._learning_rate
    assert type(lr) is cls
    config = lr.get_config()
    assert config["initial_learning_rate"] == pytest.approx(0.01) and config["decay_rate"] == pytest.approx(0.5)
    assert config["decay_steps"] == 3 * 10  # 3 epochs x ceil(640 / 64) steps
    if cls is keras.optimizers.schedules.ExponentialDecay:
        assert config["staircase"] is staircase


def _fit_callbacks(hypermodel: TabularMLP, hp: kt.HyperParameters, model: keras.Model, **fit: Any) -> list[Any]:
    captured: dict[str, Any] = {}

    def fake_fit(data: Any, **kwargs: Any) -> None:
        captured["data"] = data
        captured.update(kwargs)

    model.fit = fake_fit
    x = {"x": np.arange(8, dtype="float32").reshape(-1, 1), "c": np.array([["a"], ["b"]] * 4, dtype=object)}
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype="float32").reshape(-1, 1)
    hypermodel.fit(hp, model, x, y, validation_data=(x, y), **fit)
    return [captured]


def test_reduce_on_plateau_and_early_stopping_callbacks() -> None:
    model, hp, hypermodel = build(lr_schedule="reduce_on_plateau", lr_decay_rate=0.3, learning_rate=0.01)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    [captured] = _fit_callbacks(hypermodel, hp, model, epochs=7)
    kinds = {type(c).__name__: c for c in captured["callbacks"]}
    assert kinds["ReduceLROnPlateau"].factor == pytest.approx(0.3)
    assert kinds["ReduceLROnPlateau"].monitor == "val_loss"
    assert kinds["EarlyStopping"].patience == 4 and kinds["EarlyStopping"].monitor == "val_loss"
    assert captured["epochs"] == 7


def test_balanced_class_weights_reach_training() -> None:
    model, hp, hypermodel = build(class_weight="balanced", batch_size=16)
    [captured] = _fit_callbacks(hypermodel, hp, model)
    _, y, weights = next(iter(captured["data"].unbatch().batch(8)))
    weights = np.asarray(weights)
    labels = np.asarray(y).reshape(-1)
    # 6 negatives and 2 positives: each class's weights sum to half the rows.
    assert weights[labels == 0].sum() == pytest.approx(4.0) and weights[labels == 1].sum() == pytest.approx(4.0)
    model, hp, hypermodel = build(class_weight="none")
    [captured] = _fit_callbacks(hypermodel, hp, model)
    assert len(captured["data"].element_spec) == 2


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_regression_losses_work_on_standardised_targets(loss: str) -> None:
    model, _, _ = build("regression", loss=loss)
    assert isinstance(model.loss, StandardizedLoss) and model.loss.kind == loss
    assert model.get_layer("prediction").get_config()["transform"]["std"] == 5.0
    y_true = np.array([[10.0], [20.0]], dtype="float32")
    y_pred = np.array([[15.0], [20.0]], dtype="float32")
    expected = {"mse": 0.5, "mae": 0.5, "huber": 0.25}[loss]  # errors of 1 and 0 standard deviations
    assert float(model.loss(y_true, y_pred)) == pytest.approx(expected)


def test_task_heads() -> None:
    model, _, _ = build("multilabel", n_outputs=3)
    out = model.get_layer("probabilities")
    assert out.units == 3 and out.get_config()["activation"] == "sigmoid"
    assert model.loss == "binary_crossentropy"
    model, _, _ = build("multiclass", n_outputs=4)
    assert model.get_layer("probabilities").get_config()["activation"] == "softmax"
    assert model.loss == "sparse_categorical_crossentropy"
    model, _, _ = build("binary")
    assert model.get_layer("probability").units == 1


def _data(rows: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    x = {"x": rng.normal(size=(rows, 1)).astype("float32"),
         "c": np.array([["a"], ["b"]] * (rows // 2), dtype=object)}
    return x, (x["x"][:, 0] > 0).astype("float32").reshape(-1, 1)


def test_out_of_memory_retries_once_with_half_the_batch() -> None:
    model, hp, hypermodel = build(batch_size=32, num_layers=1)
    x, y = _data()
    seen: list[int] = []

    class OutOfMemoryAbove16(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            import tensorflow as tf

            steps = self.params["steps"]
            seen.append(steps)
            if steps < 64 // 16:  # fewer steps per epoch than batches of 16: the batch is too large
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), epochs=2,
                             callbacks=[OutOfMemoryAbove16()])
    assert seen == [64 // 32, 64 // 16]  # the first run at 32, the retry at 16
    assert len(history.history["loss"]) == 2
    assert hypermodel.oom_fallbacks == [(32, 16)]


def test_out_of_memory_twice_fails_the_trial() -> None:
    import tensorflow as tf

    model, hp, hypermodel = build(batch_size=32, num_layers=1)
    x, y = _data()

    class AlwaysOutOfMemory(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    with pytest.raises(tf.errors.ResourceExhaustedError):
        hypermodel.fit(hp, model, x, y, validation_data=(x, y), epochs=1, callbacks=[AlwaysOutOfMemory()])
    assert hypermodel.oom_fallbacks == [(32, 16)]


def test_a_cosine_decay_anneals_by_a_deadline_it_cannot_train_past(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once no more than ``tail`` epochs fit before the trial's deadline, the rate falls from where the
    cosine curve is to its floor by the last epoch that fits; with time to spare it is the plain curve."""
    from automl.hypermodels import training

    clock = {"now": 0.0}
    monkeypatch.setattr(training.time, "monotonic", lambda: clock["now"])
    deadline = {"at": 20.0}
    schedule = training.CosineSchedule(1.0, 100, lambda: deadline["at"] - clock["now"], tail=5)
    rates = []
    for epoch in range(20):  # one second an epoch; 20 s to the deadline
        clock["now"] = float(epoch)
        rates.append(schedule(epoch))
    assert schedule.anneal == (15, 20)  # at 15 s, 5 epochs fit
    assert rates[:16] == [training.cosine_rate(1.0, e, 100) for e in range(16)]  # untouched until then
    assert rates[19] == pytest.approx(0.01)  # the last epoch before the deadline: the floor
    assert all(a > b for a, b in itertools.pairwise(rates[15:]))
    deadline["at"] = 1_000.0  # the deadline moves away: the anneal is not undone
    clock["now"] = 20.0
    assert schedule(20) == pytest.approx(0.01) and schedule.anneal == (15, 20)
    # A refit given the anneal follows the same curve without any clock.
    refit = training.CosineSchedule(1.0, 100, anneal=(15, 20))
    assert [refit(e) for e in range(20)] == pytest.approx(rates)

    unlimited = training.CosineSchedule(1.0, 100, lambda: None, tail=5)  # a job without a time budget
    roomy = training.CosineSchedule(1.0, 10, lambda: 1_000.0 - clock["now"], tail=5)  # time for every epoch
    for epoch in range(10):
        clock["now"] = float(epoch)
        assert unlimited(epoch) == training.cosine_rate(1.0, epoch, 100)
        assert roomy(epoch) == training.cosine_rate(1.0, epoch, 10)
    assert unlimited.anneal is None and roomy.anneal is None


def test_a_cosine_fit_reports_its_anneal_and_a_refit_can_pass_one() -> None:
    model, hp, hypermodel = build(lr_schedule="cosine", learning_rate=0.01)
    [captured] = _fit_callbacks(hypermodel, hp, model, epochs=7, anneal=(3, 6))
    [scheduler] = [c for c in captured["callbacks"] if isinstance(c, keras.callbacks.LearningRateScheduler)]
    assert scheduler.schedule.anneal == (3, 6) == hypermodel.schedule_anneal
    assert scheduler.schedule.tail == hypermodel.patience
    model, hp, hypermodel = build(lr_schedule="cosine", learning_rate=0.01)
    _fit_callbacks(hypermodel, hp, model, epochs=7)
    assert hypermodel.schedule_anneal is None  # no time budget: the plain curve
    model, hp, hypermodel = build(lr_schedule="constant")
    _fit_callbacks(hypermodel, hp, model, epochs=7, anneal=(3, 6))
    assert hypermodel.schedule_anneal is None


def test_an_endless_dataset_keeps_each_epoch_one_reshuffled_pass() -> None:
    import tensorflow as tf

    from automl.hypermodels.training import endless, make_dataset

    x = {"x": np.arange(10, dtype="float32").reshape(-1, 1)}
    dataset, steps = endless(make_dataset(x, np.arange(10), 4, shuffle_seed=0))
    assert steps == 3  # 4 + 4 + 2 rows: the partial batch stays at the end of each pass
    batches = iter(dataset)
    epochs = [[next(batches)[1].numpy().tolist() for _ in range(steps)] for _ in range(3)]
    for epoch in epochs:
        assert [len(batch) for batch in epoch] == [4, 4, 2]
        assert sorted(itertools.chain.from_iterable(epoch)) == list(range(10))
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every pass
    unknown = tf.data.Dataset.range(10).filter(lambda i: i > 2)  # the number of batches is not known
    assert endless(unknown) == (unknown, None)


def test_a_fit_builds_its_training_iterator_once_and_takes_its_validation_rows_as_one_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each new iterator over gathered batches instantiates the per-batch function again (milliseconds on a
    table of a few columns); a finite dataset cost Keras two iterators for training every epoch, and the
    validation rows, finite when a call runs several steps, are one batch as they are (no function)."""
    import tensorflow as tf

    created: list[tf.data.Dataset] = []
    iterate = tf.data.Dataset.__iter__
    monkeypatch.setattr(tf.data.Dataset, "__iter__", lambda self: created.append(self) or iterate(self))
    model, hp, hypermodel = build(batch_size=16, num_layers=1, lr_schedule="constant")
    hypermodel.patience = 100
    hypermodel.eval_batch_size = 16  # fewer than the 64 validation rows
    x, y = _data()
    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), epochs=6)
    assert len(history.history["val_loss"]) == 6 and model.steps_per_execution > 1

    def gathered() -> list[tf.data.Dataset]:  # datasets whose batches a per-batch function gathers
        return [dataset for dataset in created if dataset.element_spec[1].shape[0] is None]

    assert len(gathered()) == 1  # the training rows' one endless iterator
    assert len(created) > 1  # the validation rows' iterators, of one batch each
    created.clear()
    hypermodel.fine_tune(hp, model, x, y, passes=5)
    assert len(created) <= 1


def test_steps_per_execution_cover_an_epoch_in_whole_calls_with_little_stretch() -> None:
    from automl.hypermodels.training import MAX_STEPS_PER_EXECUTION, steps_per_execution, whole_executions

    assert [steps_per_execution(s) for s in (1, 2, 9, 16, 26, 28, 29, 1000)] == [1, 2, 3, 8, 7, 7, 6, 8]
    assert whole_executions(26, 7) == 28 and whole_executions(16, 8) == 16 and whole_executions(5, 1) == 5
    for steps in range(1, 600):
        per_call = steps_per_execution(steps)
        assert 1 <= per_call <= MAX_STEPS_PER_EXECUTION
        assert steps <= whole_executions(steps, per_call) <= steps * 1.1
        if steps >= 20:  # an epoch of any size runs several steps per call
            assert per_call >= 3


def test_a_fit_runs_several_steps_per_call_and_scores_every_validation_row_once() -> None:
    """Several training steps per call into the graph; the validation rows (three batches of unequal
    size here) are each scored once per epoch, not the endless stream's next rows as well."""
    from automl.hypermodels.training import make_dataset

    model, hp, hypermodel = build(batch_size=16, num_layers=1, lr_schedule="constant")
    hypermodel.eval_batch_size, hypermodel.one_batch_validation_rows = 16, 0
    x, y = _data(160)
    val_x = {key: value[:40] for key, value in x.items()}
    val_y = y[:40]
    history = hypermodel.fit(hp, model, x, y, validation_data=(val_x, val_y), epochs=2)
    assert model.steps_per_execution == 5  # 160 rows in batches of 16: 10 steps, two calls an epoch
    predicted = model.predict(make_dataset(val_x, None, 1024), verbose=0)
    expected = float(keras.losses.BinaryCrossentropy()(val_y, predicted))
    assert min(history.history["val_loss"]) == pytest.approx(expected, rel=1e-4)  # the best epoch, restored
    steps: list[int] = []

    class Steps(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            steps.append(self.params["steps"])

    model, hp, hypermodel = build(batch_size=16, num_layers=1)
    hypermodel.fit(hp, model, *_data(208), validation_data=(val_x, val_y), epochs=1, callbacks=[Steps()])
    assert steps == [14] and model.steps_per_execution == 7  # 13 batches, run as two calls of 7
    hypermodel.fine_tune(hp, model, *_data(64), passes=1, callbacks=[Steps()])
    assert steps[-1] == 4 and model.steps_per_execution == 4  # chosen again for the new compile


def test_rows_in_order_that_fit_one_batch_are_that_batch_and_more_rows_are_gathered() -> None:
    from automl.hypermodels.training import make_dataset

    x = {"x": np.arange(10, dtype="float32").reshape(-1, 1), "c": np.array([["a"], ["b"]] * 5, dtype=object)}
    y, weight = np.arange(10), np.linspace(0.1, 1.0, 10)
    for batch_size, sizes in ((10, [10]), (64, [10]), (4, [4, 4, 2])):
        dataset = make_dataset(x, y, batch_size, sample_weight=weight)
        # One batch is the rows as they are (its size known without running a per-batch function);
        # more are gathered batch by batch.
        assert dataset.element_spec[1].shape[0] == (10 if len(sizes) == 1 else None)
        batches = list(dataset)
        assert [len(b[1]) for b in batches] == sizes
        assert np.concatenate([b[0]["x"].numpy() for b in batches]).ravel().tolist() == list(range(10))
        assert np.concatenate([b[0]["c"].numpy() for b in batches]).ravel().tolist() == [b"a", b"b"] * 5
        assert np.concatenate([b[2].numpy() for b in batches]).tolist() == pytest.approx(weight.tolist())
    features_only = list(make_dataset(x, None, 64))
    assert len(features_only) == 1 and set(features_only[0]) == {"x", "c"}
    assert list(make_dataset({"x": np.zeros((0, 1), "float32")}, None, 64)) == []  # no rows: no batch
