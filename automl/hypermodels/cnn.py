"""The image hypermodel: a CNN from ``space.IMAGE_SPACE``, or a Keras Applications backbone.

Raw decoded images of any size go in (float32, 0-255, ``(height, width, channels)``): the
model resizes and rescales them itself, so the saved model needs no preprocessing outside
it. The CNN's blocks: convolutions (filters, kernel, stride, padding, batch normalization,
activation), pooling, spatial dropout and optional residual shortcuts; then global pooling
or flattening, a dense head with dropout, and the task's output layer. Augmentation
(flip, rotation, zoom, contrast) runs only while training, and is left out of the model
saved for serving (``serving_model``), as is mixed precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from automl.hypermodels import training
from automl.hypermodels.backbones import BACKBONES, build_backbone, weights_path
from automl.hypermodels.base import SearchHyperModel
from automl.preprocessing.images import IMAGE_INPUT
from automl.preprocessing.layers import BackbonePreprocess


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build layers under a Keras dtype policy (``mixed_float16`` keeps variables in float32)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _conv_size(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "valid":
        return (size - kernel) // stride + 1
    return math.ceil(size / stride)


class ImageCNN(SearchHyperModel):
    kind = "image"

    def __init__(self, task: str, *args: Any, image_size: int, channels: int, weights_dir: Path | None = None,
                 mixed_precision: bool = False, **kwargs: Any) -> None:
        super().__init__("image_cnn", task, *args, **kwargs)
        self.image_size = image_size
        self.channels = channels
        self.weights_dir = weights_dir
        self.mixed_precision = mixed_precision

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        with dtype_policy("mixed_float16" if self.mixed_precision else "float32"):
            return self._network(hp, augment=True)

    def serving_model(self, hp: kt.HyperParameters, model: keras.Model) -> keras.Model:
        """The trained model rebuilt in float32 without its augmentation layers, with the same weights."""
        with dtype_policy("float32"):
            served = self._network(hp, augment=False)
        for layer in served.layers:
            if layer.weights:
                layer.set_weights(model.get_layer(layer.name).get_weights())
        return served

    def _augmentation(self, hp: kt.HyperParameters, x: Any) -> Any:
        if not self._hp(hp, "augment"):
            return x
        flip = self._hp(hp, "flip")
        if flip and flip != "none":
            x = keras.layers.RandomFlip(flip, seed=self.seed, name="random_flip")(x)
        for name, layer in (("rotation", keras.layers.RandomRotation), ("zoom", keras.layers.RandomZoom)):
            amount = float(self._hp(hp, name) or 0.0)
            if amount > 0:
                x = layer(amount, fill_mode="nearest", seed=self.seed, name=f"random_{name}")(x)
        contrast = float(self._hp(hp, "contrast") or 0.0)
        if contrast > 0:
            x = keras.layers.RandomContrast(contrast, value_range=(0, 255), seed=self.seed, name="random_contrast")(x)
        return x

    def _blocks(self, hp: kt.HyperParameters, x: Any) -> Any:
        blocks = int(self._hp(hp, "conv_blocks"))
        filters = int(self._hp(hp, "filters"))
        growth = float(self._hp(hp, "filters_growth"))
        convs = int(self._hp(hp, "convs_per_block"))
        kernel = int(self._hp(hp, "kernel_size"))
        stride = int(self._hp(hp, "conv_stride"))
        padding = str(self._hp(hp, "padding"))
        batch_norm = bool(self._hp(hp, "conv_batch_norm"))
        activation = str(self._hp(hp, "conv_activation"))
        pooling = str(self._hp(hp, "pooling"))
        spatial_dropout = float(self._hp(hp, "spatial_dropout"))
        residual = bool(self._hp(hp, "conv_residual"))
        l2 = float(self._hp(hp, "l2"))
        size = self.image_size
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(x)
        for b in range(blocks):
            width = max(8, round(filters * growth**b))
            shortcut, reduce = x, 1
            for c in range(convs):
                step = stride if c == 0 and size >= 2 * stride else 1
                reduce *= step
                # Residual blocks keep 'same' padding (the shortcut must match); a map smaller
                # than the kernel is padded rather than shrunk to nothing.
                pad = "same" if residual or size < kernel + 1 else padding
                x = keras.layers.Conv2D(
                    width, kernel, strides=step, padding=pad, use_bias=not batch_norm,
                    kernel_initializer=training.kernel_initializer(activation),
                    kernel_regularizer=training.kernel_regularizer(0.0, l2), name=f"conv_{b}_{c}",
                )(x)
                size = _conv_size(size, kernel, step, pad)
                if batch_norm:
                    x = training.batch_norm(f"conv_bn_{b}_{c}")(x)
                x = training.activation_layer(activation, name=f"conv_act_{b}_{c}")(x)
            if residual:
                if shortcut.shape[-1] != width or reduce > 1:
                    shortcut = keras.layers.Conv2D(width, 1, strides=reduce, padding="same", use_bias=False,
                                                   name=f"shortcut_{b}")(shortcut)
                x = keras.layers.Add(name=f"residual_{b}")([shortcut, x])
            if pooling != "none" and size >= 2:
                pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
                x = pool(2, name=f"pool_{b}")(x)
                size //= 2
            if spatial_dropout > 0:
                x = keras.layers.SpatialDropout2D(spatial_dropout, name=f"spatial_dropout_{b}")(x)
        return x

    def _backbone(self, hp: kt.HyperParameters, name: str, x: Any) -> Any:
        pretrained = bool(self._hp(hp, "pretrained"))
        frozen = pretrained and bool(self._hp(hp, "freeze_backbone"))
        weights = None
        if pretrained:
            if self.weights_dir is None:
                raise FileNotFoundError("No backbone weights folder is configured (AUTOML_BACKBONE_WEIGHTS_DIR).")
            weights = weights_path(name, self.weights_dir)
        x = BackbonePreprocess(BACKBONES[name].preprocessing, name="backbone_preprocess")(x)
        network = build_backbone(name, self.image_size, weights)
        network.trainable = not frozen
        # A frozen backbone runs in inference mode: its batch normalization keeps ImageNet's statistics.
        return network(x, training=False) if frozen else network(x)

    def _network(self, hp: kt.HyperParameters, augment: bool) -> keras.Model:
        backbone = str(self._hp(hp, "backbone"))
        inputs = keras.Input((None, None, self.channels), dtype="float32", name=IMAGE_INPUT)
        x = keras.layers.Resizing(self.image_size, self.image_size, interpolation="bilinear", name="resize")(inputs)
        x = self._augmentation(hp, x) if augment else x
        x = self._blocks(hp, x) if backbone == "none" else self._backbone(hp, backbone, x)
        pooling = str(self._hp(hp, "global_pooling"))
        if pooling == "average":
            x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="global_pool")(x)
        else:
            x = keras.layers.Flatten(name="flatten")(x)
        units = int(self._hp(hp, "dense_units"))
        activation = str(self._hp(hp, "conv_activation") or "relu")
        if units:
            x = keras.layers.Dense(units, kernel_initializer=training.kernel_initializer(activation),
                                   kernel_regularizer=training.kernel_regularizer(0.0, float(self._hp(hp, "l2"))),
                                   name="head_dense")(x)
            x = training.activation_layer(activation, name="head_activation")(x)
        dropout = float(self._hp(hp, "head_dropout"))
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        head, loss, metrics = training.task_head(self.task, self.n_outputs, self._hp(hp, "loss"),
                                                 self.target_transform(hp))
        model = keras.Model(inputs=inputs, outputs=head(x), name="automl_cnn")
        self.compile(hp, model, loss, metrics)
        return model
