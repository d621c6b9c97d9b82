"""The package's one image reader: any image file, PIL image or array -> RGB pixels in [0, 1], by its real range.

PIL's own ``image.convert("RGB")`` clips 16-bit and 32-bit images at 255 (a 16-bit PNG comes out black and white)
and truncates float images to 0 or 1; this reader scales each kind by the range its values live in instead.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

# PIL modes of 16-bit single-channel images; PIL also opens 16-bit PNGs and TIFFs as mode "I" (32-bit integers).
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def read_image(image: Image.Image | np.ndarray | str | os.PathLike) -> np.ndarray:
    """An image -> ``(height, width, 3)`` float32 RGB pixels in [0, 1].

    * 8-bit PIL modes (``L``, ``P``, ``RGB``, ``RGBA``, ``CMYK``, ...) go through PIL's RGB conversion (alpha is
      dropped) and are divided by 255;
    * 16-bit modes (``I;16*``, and ``I``, which holds 16-bit PNGs and TIFFs) are divided by 65535;
    * float mode ``F`` is taken as [0, 1];
    * arrays: ``uint8`` / 255, ``uint16`` / 65535, ``bool`` as 0 / 1, float as [0, 1]; ``(H, W)`` and
      ``(H, W, 1)`` grayscale is repeated over three channels, an ``(H, W, 4)`` alpha channel dropped.

    A path is opened and decoded at once, so a broken file raises here naming it.

    Raises:
        ValueError: values outside the range of their type (e.g. a float image outside [0, 1]), NaN pixels, or an
            array that is not one image.
    """
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                opened.load()
                return read_image(opened)
        except OSError as error:
            raise OSError(f"{os.fspath(image)}: cannot be read as an image ({error}).") from error
    if isinstance(image, Image.Image):
        if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
            return _scaled(np.asarray(image, dtype=np.int64), 65535.0, f"a mode-{image.mode} (16-bit) image")
        if image.mode == "F":
            return _scaled(np.asarray(image, dtype=np.float32), 1.0, "a mode-F (float) image")
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)
        pixels /= 255.0
        return pixels
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3)) or 0 in array.shape[:2]:
        raise ValueError(f"image: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, got {array.shape}.")
    if array.dtype == np.bool_:
        return _scaled(array.astype(np.float32), 1.0, "a bool array")
    if array.dtype == np.uint8:
        return _scaled(array, 255.0, "a uint8 array")
    if array.dtype == np.uint16:
        return _scaled(array, 65535.0, "a uint16 array")
    if array.dtype.kind == "f":
        return _scaled(array.astype(np.float32), 1.0, f"a {array.dtype} array")
    raise TypeError(f"image: expected a uint8, uint16, bool or float array, got {array.dtype}.")


def _scaled(values: np.ndarray, maximum: float, what: str) -> np.ndarray:
    """``values / maximum`` as (H, W, 3) float32, after checking that they lie in [0, maximum]."""
    if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= maximum):
        raise ValueError(
            f"image: expected the values of {what} in [0, {maximum:g}], got [{values.min()}, {values.max()}]."
        )
    pixels = (values / maximum).astype(np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return np.ascontiguousarray(np.broadcast_to(pixels, (*pixels.shape[:2], 3)))


__all__ = ["read_image"]
