"""Image files -> batched tf.data, streamed from disk: never the whole dataset in memory.

The dataset's images are canonical 8-bit PNG files (see ``automl.datasets.images``). Only
their paths are shuffled; each batch is read, decoded and resized in parallel as training
asks for it. Resizing here uses the same operation as the model's own ``Resizing`` layer
(bilinear, no antialiasing), so a trained model sees the same pixels from the pipeline as
from a raw image of any size sent to it for a prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

IMAGE_INPUT = "image"
EVAL_BATCH_SIZE = 64


def image_dataset(
    x: dict[str, np.ndarray],
    y: np.ndarray | None,
    batch_size: int,
    shuffle_seed: int | None = None,
    sample_weight: np.ndarray | None = None,
    passes: int = 1,
    *,
    size: int,
    channels: int,
) -> tf.data.Dataset:
    """``x[IMAGE_INPUT]``: absolute paths of PNG files; batches of ``(size, size, channels)`` float32 0-255."""
    paths = np.asarray(x[IMAGE_INPUT]).astype(str).reshape(-1)
    parts: Any = (paths,) if y is None else (paths, y) if sample_weight is None else (
        paths, y, sample_weight.astype("float32"))
    dataset = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    if passes > 1:
        dataset = dataset.repeat(passes)

    def load(path: tf.Tensor, *rest: tf.Tensor) -> Any:
        image = tf.io.decode_png(tf.io.read_file(path), channels=channels)
        image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear", antialias=False)
        image = tf.ensure_shape(image, (size, size, channels))
        return (image, *rest) if rest else image

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
