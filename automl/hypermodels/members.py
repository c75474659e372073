"""TabM: one network that trains k members at once and answers their average (Gorishniy et al., "TabM:
Advancing tabular deep learning with parameter-efficient ensembling", ICLR 2025; its "mini" form).

Each member sees the encoded row scaled by its own vector (``MemberScaling``, initialised to random
signs), then every hidden layer is shared (one kernel applied to the k copies), and each member has its
own output layer (``member_head``). Training averages the members' own losses (``MemberTrainedModel``): the
members stay diverse, as in a real ensemble, where training on the loss of their average makes them one
network again. The model answers the average of the members' probabilities (or regression values in the
target's units) from its last layer, ``MemberAverage``, so validation, early stopping, serving, MC
dropout, calibration and ensembles see an ordinary model.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="automl")
class MemberScaling(keras.layers.Layer):
    """(batch, features) -> (batch, k, features): one copy of each row per member, scaled by the member's
    own trainable vector, initialised to random signs as TabM-mini's first adapter."""

    def __init__(self, members: int, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(members) < 2:
            raise ValueError(f"members must be 2 or more, not {members}")
        self.members = int(members)
        self.seed = int(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        def random_signs(shape: tuple[int, ...], dtype: Any = None) -> Any:
            draws = keras.random.randint(shape, 0, 2, seed=self.seed)
            return ops.cast(draws, dtype or "float32") * 2.0 - 1.0

        features = input_shape[-1]
        assert features is not None, "the encoded row's width is known when the model is built"
        self.scale = self.add_weight(name="scale", shape=(self.members, int(features)),
                                     initializer=random_signs)

    def call(self, inputs: Any) -> Any:
        return ops.expand_dims(inputs, 1) * ops.cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.members, *input_shape[1:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "members": self.members, "seed": self.seed}


def member_head(members: int, units: int, activation: str | None, name: str) -> keras.layers.Layer:
    """(batch, k, hidden) -> (batch, k, units): a separate output layer per member."""
    return keras.layers.EinsumDense("bkh,kho->bko", output_shape=(members, units), bias_axes="ko",
                                    activation=activation, name=name, dtype="float32")


@keras.saving.register_keras_serializable(package="automl")
class MemberAverage(keras.layers.Layer):
    """(batch, k, ...) -> (batch, ...): the members' average, the model's answer. Keeps the members' own
    answers of its latest call for ``MemberTrainedModel.compute_loss`` in the same training step (a worker
    trains on one device; replicas of a distribution strategy tracing side by side would find another
    replica's answers there, which ``members_of`` refuses rather than mixes)."""

    def call(self, inputs: Any) -> Any:
        average = ops.mean(inputs, axis=1)
        self._latest = (inputs, average)
        return average

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], *input_shape[2:])

    def members_of(self, average: Any) -> Any | None:
        """The members' answers behind ``average``, when it is this layer's latest output."""
        latest = getattr(self, "_latest", None)
        return latest[0] if latest is not None and latest[1] is average else None


@keras.saving.register_keras_serializable(package="automl")
class MemberTrainedModel(keras.Model):
    """A functional model ending in ``MemberAverage`` whose training loss is the mean of its members'
    losses (each member trained on every row, as TabM trains); evaluation scores the average, as served."""

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Any:
        if training and y is not None:
            average = next(layer for layer in self.layers if isinstance(layer, MemberAverage))
            members = average.members_of(y_pred)
            if members is None:
                raise RuntimeError("the members' answers of this training step are missing")
            k = members.shape[1]
            # Row r of the batch becomes rows r*k ... r*k + k - 1, one per member, each with r's label and weight.
            y = ops.reshape(ops.repeat(ops.expand_dims(y, 1), k, axis=1), (-1, *y.shape[1:]))
            y_pred = ops.reshape(members, (-1, *members.shape[2:]))
            if sample_weight is not None:
                sample_weight = ops.reshape(ops.repeat(ops.expand_dims(sample_weight, 1), k, axis=1), (-1,))
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
