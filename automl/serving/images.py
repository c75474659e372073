"""Images in a prediction request -> arrays, and the compiled call that runs them through a model.

A request sends image files (multipart) or ``{"b64": "<base64 of the file>"}`` instances
(JSON, TensorFlow Serving's convention for binary data). Each is decoded with the same
Pillow conversion the training images went through (``automl.datasets.images``) and
handed to the model at its own size: the model resizes inside. Images of one size go
through the model together; the answers come back in the request's order.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from typing import Any

import numpy as np

from automl.errors import InvalidInstances, TooLarge
from automl.preprocessing.pixels import BadImage, PixelBomb, decode_image, header_size

MAX_IMAGES = 256  # per request
MAX_PIXELS = 4096 * 4096  # per image
MAX_REQUEST_PIXELS = 64 * 1024 * 1024  # all images of a request together
MAX_GROUP = 64  # images of one size per model call
MAX_MC_IMAGES = 512  # image copies per model call under Monte Carlo dropout
MAX_REPORTED_ERRORS = 50


def _check_count(n: int) -> None:
    if n == 0:
        raise InvalidInstances("Send at least one image.", {"instances": ["no images"]})
    if n > MAX_IMAGES:
        raise InvalidInstances(f"{n} images in one request; at most {MAX_IMAGES} are accepted. Split the request.",
                               {"instances": [f"at most {MAX_IMAGES}"]})


def _check_sizes(items: list[tuple[str, bytes | None, str | None]]) -> list[tuple[str, bytes | None, str | None]]:
    """Every image's width x height from its header, before any is decoded: one over ``MAX_PIXELS``, or
    all together over ``MAX_REQUEST_PIXELS``, is a 413. Unreadable headers are left for the 422."""
    checked: list[tuple[str, bytes | None, str | None]] = []
    pixels = 0
    for where, data, problem in items:
        if problem is None and data is not None:
            try:
                width, height = header_size(data)
            except PixelBomb as exc:
                raise TooLarge(f"'{where}': {exc}. Send it smaller: the model resizes to its own size "
                               "anyway.") from None
            except BadImage as exc:
                checked.append((where, None, str(exc)))
                continue
            if width * height > MAX_PIXELS:
                raise TooLarge(f"'{where}' is {width}x{height} pixels; at most {MAX_PIXELS:,} pixels per image are "
                               "accepted. Send it smaller: the model resizes to its own size anyway.")
            pixels += width * height
        checked.append((where, data, problem))
    if pixels > MAX_REQUEST_PIXELS:
        raise TooLarge(f"The images hold {pixels:,} pixels together; at most {MAX_REQUEST_PIXELS:,} per request. "
                       "Send fewer or smaller images.")
    return checked


def _decode_all(items: list[tuple[str, bytes | None, str | None]], channels: int) -> list[np.ndarray]:
    """``(where, data, problem)`` per image -> arrays, once their sizes passed (``_check_sizes``); a 422
    naming every image that cannot be used."""
    errors: dict[str, list[str]] = {}
    arrays: list[np.ndarray] = []
    for where, data, problem in _check_sizes(items):
        if problem is None and data is not None:
            try:
                arrays.append(decode_image(data, channels, MAX_PIXELS))
                continue
            except BadImage as exc:
                problem = str(exc)
        if len(errors) < MAX_REPORTED_ERRORS:
            errors[where] = [problem or "no data"]
    if errors:
        first = next(iter(errors))
        raise InvalidInstances(f"{len(errors)} image(s) cannot be used, first '{first}': {errors[first][0]}. Send "
                               "PNG, JPEG, BMP, GIF or WebP files.", errors)
    return arrays


def decode_instances(instances: list[Any], channels: int) -> list[np.ndarray]:
    """JSON instances ``{"b64": "..."}`` -> arrays."""
    _check_count(len(instances))
    items: list[tuple[str, bytes | None, str | None]] = []
    for row, instance in enumerate(instances):
        where = f"instances.{row}"
        if not isinstance(instance, dict) or not isinstance(instance.get("b64"), str):
            items.append((where, None, 'must be {"b64": "<base64 of an image file>"}'))
            continue
        try:
            items.append((where, base64.b64decode(instance["b64"], validate=True), None))
        except (binascii.Error, ValueError):
            items.append((where, None, "'b64' is not valid base64"))
    return _decode_all(items, channels)


def decode_files(files: list[tuple[str, bytes]], channels: int) -> list[np.ndarray]:
    """Uploaded ``(file name, bytes)`` -> arrays; errors name the files."""
    _check_count(len(files))
    return _decode_all([(name, data, None if data else "the file is empty") for name, data in files], channels)


class ImageCall:
    """``model(images, training=False)`` as one concrete function for batches of any image size."""

    def __init__(self, model: Any, channels: int) -> None:
        import tensorflow as tf

        self._tf = tf
        self.model = model
        signature = [tf.TensorSpec((None, None, None, channels), tf.float32)]
        self._concrete = tf.function(lambda x: model(x, training=False),
                                     input_signature=signature).get_concrete_function()

    def __call__(self, images: list[np.ndarray], mc_samples: int | None = None) -> np.ndarray:
        """One output row per image (with ``mc_samples``: shape ``(mc_samples, n, outputs)``, dropout on)."""
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            groups[image.shape].append(i)
        out: np.ndarray | None = None
        for indices in groups.values():
            for start in range(0, len(indices), MAX_GROUP):
                chosen = indices[start:start + MAX_GROUP]
                batch = np.stack([images[i] for i in chosen]).astype(np.float32)
                if mc_samples:
                    # Copies of the images with dropout on, at most MAX_MC_IMAGES through the model at once.
                    per_call = max(1, MAX_MC_IMAGES // len(chosen))
                    draws = []
                    for done in range(0, mc_samples, per_call):
                        copies = min(per_call, mc_samples - done)
                        tiled = self._tf.constant(np.concatenate([batch] * copies))
                        draws.append(np.asarray(self.model(tiled, training=True), dtype="float64")
                                     .reshape(copies, len(chosen), -1))
                    result = np.concatenate(draws)
                    if out is None:
                        out = np.zeros((mc_samples, len(images), result.shape[-1]))
                    out[:, chosen] = result
                else:
                    result = np.asarray(self._concrete(self._tf.constant(batch)), dtype="float64")
                    if out is None:
                        out = np.zeros((len(images), result.shape[-1]))
                    out[chosen] = result
        assert out is not None
        return out
