"""Keras Applications backbones for transfer learning, from the operator's local weight files only.

The service never downloads weights: a backbone starts either from scratch or from the
"no top" weight file the operator placed in ``AUTOML_BACKBONE_WEIGHTS_DIR``, under the name
Keras itself gives it (copy it from ``~/.keras/models`` of a machine that downloaded it).
Nothing here imports TensorFlow until a backbone is built, so the API can check the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Backbone:
    name: str
    constructor: str  # the keras.applications attribute
    weights_file: str
    preprocessing: str  # BackbonePreprocess mode
    min_size: int = 32


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone("mobilenet_v2", "MobileNetV2",
                             "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", "tf"),
    "efficientnet_b0": Backbone("efficientnet_b0", "EfficientNetB0", "efficientnetb0_notop.h5", "none"),
    "resnet50": Backbone("resnet50", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "caffe"),
}


def weights_path(name: str, weights_dir: Path) -> Path:
    return weights_dir / BACKBONES[name].weights_file


def build_backbone(name: str, size: int, weights: Path | None) -> Any:
    """The backbone without its classifier, for ``(size, size, 3)`` inputs; ``weights``: a local file or None."""
    import keras

    backbone = BACKBONES[name]
    if weights is not None and not weights.is_file():
        raise FileNotFoundError(f"The {name} weight file {weights} is missing; place it there or train with "
                                "pretrained: false.")
    constructor = getattr(keras.applications, backbone.constructor)
    return constructor(include_top=False, weights=str(weights) if weights is not None else None,
                       input_shape=(size, size, 3), pooling=None, name=f"backbone_{name}")
