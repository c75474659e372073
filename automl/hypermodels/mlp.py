"""The tabular multilayer perceptron: every hyperparameter of ``space.TABULAR_SPACE`` made real.

Numeric transform and embeddings, categorical embeddings, depth and width (funnel or free
widths), residual blocks with batch normalization, a wide &
deep path, activation with its initializer, dropout, batch normalization, L1/L2, activity
regularization, max-norm, optimizer (with momentum, Nesterov, weight decay), learning rate and
its schedule, batch size, label smoothing, class weighting, the regression loss and target transform, and
TabM's members (``automl.hypermodels.members``).
"""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner as kt

from automl.hypermodels import training
from automl.hypermodels.base import SearchHyperModel
from automl.hypermodels.members import MemberScaling, MemberTrainedModel
from automl.hypermodels.space import MAX_LAYERS, MIN_UNITS, SPACE_BY_KIND
from automl.preprocessing.features import FeatureSpec
from automl.preprocessing.layers import Encoding, build_inputs, idle_encoding_options


class TabularMLP(SearchHyperModel):
    """Builds an MLP over preprocessed raw columns; knows nothing about jobs or storage."""

    # A table's validation rows as one batch, taken as they are: a dataset of several batches runs a per-batch
    # function, instantiated again for every epoch's new validation iterator (when training runs several
    # steps per call, see ``SearchHyperModel.fit``), which cost 7-13 ms on tables of 7-20 columns.
    one_batch_validation_rows = 16_384

    def __init__(self, features: list[FeatureSpec], task: str, *args: Any, **kwargs: Any) -> None:
        super().__init__("tabular_mlp", task, *args, **kwargs)
        self.features = features
        # Options this table gives nothing to act on are never declared: a grid does not double
        # over them, and two configurations that differ only there are one configuration.
        self.idle = idle_encoding_options(features)

    def _hp(self, hp: kt.HyperParameters, name: str) -> Any:
        # A hyperparameter that applies only under an idle one (embedding_units) is idle too.
        if name in self.idle or any(c.parent in self.idle for c in SPACE_BY_KIND[self.kind][name].conditions):
            return None
        return super()._hp(hp, name)

    def widths(self, hp: kt.HyperParameters) -> list[int]:
        num_layers = int(self._hp(hp, "num_layers"))
        units = int(self._hp(hp, "units"))
        schedule = self._hp(hp, "width_schedule")
        shrink = self._hp(hp, "shrink")
        free = [self._hp(hp, f"units_{i}") for i in range(1, MAX_LAYERS)]
        if schedule == "free":
            return [units, *(int(w) for w in free[: num_layers - 1])]
        return [max(MIN_UNITS, round(units * float(shrink) ** i)) for i in range(num_layers)]

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        widths = self.widths(hp)
        residual = bool(self._hp(hp, "residual"))
        wide_deep = bool(self._hp(hp, "wide_deep"))
        activation = str(self._hp(hp, "activation"))
        dropout = float(self._hp(hp, "dropout"))
        batch_norm = bool(self._hp(hp, "batch_norm"))
        l1, l2 = float(self._hp(hp, "l1")), float(self._hp(hp, "l2"))
        activity_l2 = float(self._hp(hp, "activity_l2"))
        max_norm = float(self._hp(hp, "max_norm"))
        regression_loss = self._hp(hp, "loss")
        label_smoothing = self._hp(hp, "label_smoothing")
        encoding = Encoding(
            numeric_transform=str(self._hp(hp, "numeric_transform") or "standard"),
            numeric_embedding=str(self._hp(hp, "numeric_embedding") or "none"),
            embedding_units=int(self._hp(hp, "embedding_units") or 8),
            category_embedding=int(self._hp(hp, "category_embedding") or 0),
            one_hot_integers=bool(self._hp(hp, "one_hot_integers")),
        )

        inputs, encoded = build_inputs(self.features, encoding)
        members = int(self._hp(hp, "tabm_members") or 1)
        if members > 1:  # (batch, members, features) from here on: see automl.hypermodels.members
            encoded = MemberScaling(members, seed=self.seed, name="member_scaling")(encoded)
        x = encoded
        for i, width in enumerate(widths):
            # Residual blocks always normalise: that is what keeps deep residual stacks trainable.
            block_norm = batch_norm or (residual and i > 0)
            y = keras.layers.Dense(
                width,
                kernel_initializer=training.kernel_initializer(activation),
                kernel_regularizer=training.kernel_regularizer(l1, l2),
                activity_regularizer=training.activity_regularizer(activity_l2),
                kernel_constraint=training.kernel_constraint(max_norm),
                use_bias=not block_norm,
                name=f"dense_{i}",
            )(x)
            if block_norm:
                y = training.batch_norm(f"batch_norm_{i}")(y)
            y = training.activation_layer(activation, name=f"activation_{i}")(y)
            if dropout > 0:
                y = training.dropout_layer(dropout, name=f"dropout_{i}")(y)
            if residual and i > 0:
                shortcut = x
                if x.shape[-1] != width:
                    shortcut = keras.layers.Dense(width, use_bias=False, name=f"shortcut_{i}")(x)
                y = keras.layers.Add(name=f"residual_{i}")([shortcut, y])
            x = y
        if wide_deep:
            x = keras.layers.Concatenate(name="wide_deep")([x, encoded])

        head, loss, metrics = training.task_head(
            self.task, self.n_outputs, regression_loss, self.target_transform(hp), float(label_smoothing or 0.0),
            members,
        )
        model_class = MemberTrainedModel if members > 1 else keras.Model
        model = model_class(inputs=inputs, outputs=head(x), name="automl_mlp")
        self.compile(hp, model, loss, metrics)
        return model
