"""Image archives the tests build: scikit-learn's bundled digits written out as PNG files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

DIGIT_SIDE = 16  # the 8x8 digits, upscaled


def digit_images(n: int, offset: int = 0, side: int = DIGIT_SIDE) -> tuple[list[Image.Image], list[int]]:
    """``n`` digits (from ``offset`` in the bundled 1,797) as 8-bit grayscale images, and their labels."""
    digits = load_digits()
    images, labels = [], []
    for i in range(offset, offset + n):
        pixels = (digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
        images.append(Image.fromarray(pixels, mode="L").resize((side, side), Image.Resampling.NEAREST))
        labels.append(int(digits.target[i]))
    return images, labels


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def digits_archive(path: Path, n: int, layout: str = "folders", offset: int = 0, classes: int = 10,
                   extra_files: dict[str, bytes] | None = None, extra_rows: tuple[str, ...] = ()) -> Path:
    """A zip of ``n`` digit PNGs (only labels below ``classes``): ``<label>/<i>.png`` folders, or
    ``img/<i>.png`` files with a ``labels.csv`` (plus ``extra_rows``); ``extra_files`` added as they are."""
    images, labels = digit_images(n, offset)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        rows = ["filename,digit"]
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            if label >= classes:
                continue
            if layout == "folders":
                archive.writestr(f"digits/{label}/{i:04d}.png", png_bytes(image))
            else:
                archive.writestr(f"img/{i:04d}.png", png_bytes(image))
                rows.append(f"img/{i:04d}.png,{label}")
        for name, data in (extra_files or {}).items():
            archive.writestr(name, data)
        if layout != "folders":
            archive.writestr("labels.csv", "\n".join([*rows, *extra_rows]) + "\n")
    return path
