"""Image datasets on this machine: ingest, the streaming pipeline, CNN training throughput,
quality on scikit-learn's digits, and serving latency for image requests.

    .venv/bin/python -m benchmarks.images [--write]

Everything runs in this process on whatever device TensorFlow sees (the report names it), so
the same command on a GPU machine gives the GPU figures. ``--write`` records the figures in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmarks._docs import write_section

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _digits_zip(path: Path) -> Path:
    from tests.image_data import digits_archive

    return digits_archive(path, 1797, "folders")


def _photos_zip(path: Path, n: int) -> Path:
    """``n`` 160x120 RGB JPEGs of two classes (a filled circle or a square on noise)."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(n):
            image = Image.fromarray(rng.integers(0, 120, (120, 160, 3), dtype=np.uint8))
            draw = ImageDraw.Draw(image)
            x, y, r = (int(v) for v in rng.integers((30, 30, 15), (130, 90, 30)))
            color = tuple(int(c) for c in rng.integers(150, 255, 3))
            if i % 2:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
            else:
                draw.rectangle((x - r, y - r, x + r, y + r), fill=color)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            archive.writestr(f"{'circle' if i % 2 else 'square'}/{i:05d}.jpg", buffer.getvalue())
    return path


def _ingest(path: Path, root: Path) -> tuple[Any, float]:
    from automl.datasets.ingest import ingest_file

    start = time.perf_counter()
    dataset = ingest_file(path, path.name, root)
    return dataset, time.perf_counter() - start


def _spec(dataset: Any, work: Path, size: int, **kwargs: Any) -> Any:
    import pandas as pd

    from automl.datasets.targets import resolve_target
    from automl.search.spec import SearchSpec

    labels = pd.read_parquet(dataset.path, columns=["label"])["label"]
    info = resolve_target("label", {"label": "categorical"}, labels)
    return SearchSpec(job_id="bench", dataset_path=dataset.path, column_types={"label": "categorical"},
                      targets=["label"], task=info.task, classes=info.classes, objective="val_accuracy",
                      direction="max", patience=5, seed=1, work_dir=work, kind="image", image_size=size,
                      channels=dataset.images["channels"], **kwargs)


def _training(dataset: Any, work: Path, size: int, overrides: dict[str, Any], epochs: int) -> dict[str, float]:
    """Seconds per epoch (median after the first, which traces) and training images per second."""
    import keras
    import keras_tuner as kt

    from automl.hypermodels.narrowing import normalize_overrides
    from automl.search.data import prepare
    from automl.search.runner import make_hypermodel

    spec = _spec(dataset, work, size, tuner="random", max_trials=1, max_epochs=epochs,
                 overrides=normalize_overrides(overrides, "binary", "image"))
    data = prepare(spec)
    hypermodel = make_hypermodel(spec, data)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            times.append(time.perf_counter() - self.start)

    model.fit(data.pipeline(data.x_train, data.y_train, int(hp.values["batch_size"]), shuffle_seed=1),
              epochs=epochs, callbacks=[Clock()], verbose=0)
    per_epoch = statistics.median(times[1:]) if len(times) > 1 else times[0]
    return {"s_per_epoch": per_epoch, "images_per_s": data.split_sizes["train"] / per_epoch,
            "params": float(model.count_params())}


def _pipeline_rate(dataset: Any, work: Path, size: int) -> float:
    from automl.search.data import prepare

    spec = _spec(dataset, work, size, tuner="random", max_trials=1, max_epochs=1)
    data = prepare(spec)
    start = time.perf_counter()
    n = sum(int(batch[0].shape[0]) for batch in data.pipeline(data.x_train, data.y_train, 32, shuffle_seed=1))
    return n / (time.perf_counter() - start)


def _quality(dataset: Any, work: Path) -> tuple[Any, Any, float]:
    from automl.hypermodels.narrowing import normalize_overrides
    from automl.search.local import run_local_search

    overrides = {"conv_blocks": [1, 2, 3], "global_pooling": ["flatten", "average"], "augment": False}
    spec = _spec(dataset, work, 32, tuner="random", max_trials=4, max_epochs=20,
                 overrides=normalize_overrides(overrides, "multiclass", "image"))
    start = time.perf_counter()
    search = run_local_search(spec)
    return spec, search, time.perf_counter() - start


def _serving(model_dir: Path) -> dict[str, float]:
    from automl.serving.adapters import image_files
    from automl.serving.predictor import Predictor
    from tests.image_data import digit_images, png_bytes

    predictor = Predictor(model_dir)
    images, _ = digit_images(32, offset=1700)
    files = [(f"{i}.png", png_bytes(image)) for i, image in enumerate(images)]
    out: dict[str, float] = {}
    for n in (1, 32):
        samples = []
        for _ in range(100 if n == 1 else 30):
            start = time.perf_counter()
            predictor.probabilities(image_files(predictor, files[:n]))
            samples.append((time.perf_counter() - start) * 1000)
        out[f"p50_ms_{n}"] = statistics.median(samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="record the figures in docs/benchmarks.md")
    parser.add_argument("--photos", type=int, default=600, help="synthetic 160x120 JPEGs to ingest and train on")
    args = parser.parse_args()
    import tensorflow as tf

    from automl.registry import save_model

    gpus = tf.config.list_physical_devices("GPU")
    device = ", ".join(g.name for g in gpus) if gpus else f"CPU only ({os.cpu_count()} cores)"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        digits, digits_s = _ingest(_digits_zip(root / "digits.zip"), root / "datasets")
        photos, photos_s = _ingest(_photos_zip(root / "photos.zip", args.photos), root / "datasets")
        rate = _pipeline_rate(photos, root / "pipe", 96)
        cnn = _training(photos, root / "cnn", 96, {"conv_blocks": 3, "filters": 32}, epochs=3)
        mobilenet = _training(photos, root / "mnv2", 96, {"backbone": "mobilenet_v2", "pretrained": False}, epochs=2)
        spec, search, search_s = _quality(digits, root / "quality")
        save_model(search.trained.model, {"kind": "image", "task": "multiclass", "target": "label",
                                          "classes": spec.classes, "features": [],
                                          "image": {"size": 32, "channels": 1}}, root / "models", "digits")
        serving = _serving(root / "models" / "digits")

    accuracy = search.trained.test_metrics.get("accuracy")
    lines = [
        f"Device: {device}. `python -m benchmarks.images` (all in one process).",
        "",
        "| measure | figure |",
        "| --- | --- |",
        f"| ingest: 1,797 digit PNGs (16x16, zip) | {digits_s:.2f} s ({1797 / digits_s:,.0f} images/s) |",
        f"| ingest: {args.photos} JPEGs 160x120 RGB | {photos_s:.2f} s ({args.photos / photos_s:,.0f} images/s) |",
        f"| tf.data pipeline alone (read, decode, resize to 96x96, batch 32) | {rate:,.0f} images/s |",
        f"| training, CNN 3 blocks x 32-64-128 filters, 96x96 RGB ({cnn['params']:,.0f} parameters) | "
        f"{cnn['s_per_epoch']:.2f} s/epoch, {cnn['images_per_s']:,.0f} images/s |",
        f"| training, MobileNetV2 from scratch, 96x96 ({mobilenet['params']:,.0f} parameters) | "
        f"{mobilenet['s_per_epoch']:.2f} s/epoch, {mobilenet['images_per_s']:,.0f} images/s |",
        f"| digits (1,797 images, 32x32): random search, 4 trials x up to 20 epochs | {search_s:.0f} s, "
        f"held-out test accuracy **{accuracy:.3f}** (chance 0.10) |",
        f"| serving in process, PNG bytes -> probabilities: 1 image / 32 images | "
        f"{serving['p50_ms_1']:.2f} ms / {serving['p50_ms_32']:.2f} ms (p50) |",
        "",
        "GPU figures: not measured yet; no GPU machine was lent to the session that wrote this "
        "benchmark. Run the same command on a GPU worker to add them.",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section(DOCS, "images", "Images", report)


if __name__ == "__main__":
    main()
