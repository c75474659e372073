"""Image bytes -> pixel arrays: the one decoding shared by upload ingestion and prediction requests.

Pillow only, limited to the allowed formats and to a pixel count checked from the header
before any pixel is decoded (decompression bombs). 16-bit and float images are scaled to 8
bits; colour images become RGB (alpha dropped), grey ones one channel, so a request image
reaches the model exactly as the training images did.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class BadImage(ValueError):
    """Bytes that are not a readable image of an allowed format (the message says why)."""


class PixelBomb(BadImage):
    """An image whose width x height is over the limit: refused before its pixels are decoded."""


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the image's header alone: nothing is decoded (Pillow opens lazily)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are what the caller checks
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                return image.size
        except UnidentifiedImageError:
            raise BadImage(f"not an image in an allowed format ({', '.join(FORMATS)})") from None
        except Image.DecompressionBombError as exc:
            raise PixelBomb(str(exc)) from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise BadImage(f"the image data is damaged ({exc})") from None


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode ``data`` (first frame of an animation) with every pixel loaded; ``BadImage`` otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise PixelBomb(f"{width}x{height} pixels is over the limit of {max_pixels:,} pixels per image")
            if width < 1 or height < 1:
                raise BadImage("the image has no pixels")
            image.seek(0)
            image.load()
        except BadImage:
            raise
        except UnidentifiedImageError:
            raise BadImage(f"not an image in an allowed format ({', '.join(FORMATS)})") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise PixelBomb(str(exc)) from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
            raise BadImage(f"the image data is damaged ({exc})") from None
    return image


def is_color(image: Image.Image) -> bool:
    if image.mode in GRAY_MODES:
        return False
    if image.mode == "P":
        palette = image.convert("RGB")
        array = np.asarray(palette)
        return not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 1], array[..., 2]))
    return True


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    """8-bit grayscale (1 channel) or RGB (3; alpha dropped), scaling 16-bit and float data."""
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8), mode="L")
    elif image.mode in ("I", "F"):
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    return image.convert("L" if channels == 1 else "RGB")


def decode_image(data: bytes, channels: int, max_pixels: int) -> np.ndarray:
    """Request bytes -> ``(height, width, channels)`` uint8 array, converted as the training images were."""
    image = to_mode(open_image(data, max_pixels), channels)
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(array.shape[0], array.shape[1], channels)
