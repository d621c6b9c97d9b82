"""Image processor of the CCT vision family: resize to the model resolution, rescale to [0, 1], normalise.

This file may import only `transformers`, NumPy and sibling files: `register_for_auto_class` copies it next to the
weights for `trust_remote_code` users.
"""

import numpy as np
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ChannelDimension,
    ImageInput,
    PILImageResampling,
    is_scaled_image,
)
from transformers.utils import logging

logger = logging.get_logger(__name__)

# PIL modes of 16-bit single-channel images (e.g. 16-bit PNGs); PIL also opens 16-bit PNGs and TIFFs as mode "I"
# (32-bit integers). `Image.convert("RGB")` clips all of them at 255, and truncates float images (mode "F").
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

# Per-channel statistics used by the official recipes (SHI-Labs/Compact-Transformers, `configs/datasets`).
CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
CIFAR100_MEAN, CIFAR100_STD = [0.5071, 0.4867, 0.4408], [0.2675, 0.2565, 0.2761]
FLOWERS102_MEAN, FLOWERS102_STD = [0.4353, 0.3773, 0.2872], [0.2966, 0.2455, 0.2698]
IMAGENET_MEAN, IMAGENET_STD = list(IMAGENET_DEFAULT_MEAN), list(IMAGENET_DEFAULT_STD)


class CCTImageProcessor(PilBackend):
    """PIL/NumPy image processor for [`CCTForImageClassification`] (no torchvision needed).

    Converts every image to RGB (grayscale and RGBA inputs included), resizes it to `size` (default 32x32, the
    CIFAR presets), rescales by 1/255 and normalises with `image_mean` / `image_std` (default: CIFAR-10 statistics;
    pass e.g. `image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, size={"height": 224, "width": 224}` for the 224 px
    presets). Output `pixel_values`: `(batch, 3, height, width)` float32.

    Every image is read by the range its values live in, never clipped or truncated: 16-bit images (PIL modes
    `I;16*` and `I`, NumPy `uint16`) are scaled from [0, 65535], float PIL images (mode `F`) from [0, 1], bool arrays
    map False / True to black / white; a 2-D array is one grayscale image. (Resizing goes through 8-bit PIL images, so
    these are quantised to 8 bits first.) Values outside those ranges, NaN and empty images raise a `ValueError`. As
    transformers' processors do, a warning is logged when `do_rescale=True` meets float arrays already in [0, 1]
    (pass `do_rescale=False` for those).
    """

    resample = PILImageResampling.BICUBIC  # the official (timm) evaluation interpolation
    image_mean = CIFAR10_MEAN
    image_std = CIFAR10_STD
    size = {"height": 32, "width": 32}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    def _prepare_images_structure(self, images: ImageInput, expected_ndims: int = 3) -> list:
        """transformers' flattening of the input, which also takes 2-D (grayscale) arrays as single images."""
        if _is_2d_array(images):
            return [images]
        if isinstance(images, (list, tuple)) and images and all(_is_2d_array(image) for image in images):
            return list(images)
        return super()._prepare_images_structure(images, expected_ndims=expected_ndims)

    def process_image(self, image: ImageInput, *args, **kwargs) -> np.ndarray:
        """One image -> channels-first NumPy array, read by its real range first (see the class docstring)."""
        image = _read_by_range(image)
        if isinstance(image, np.ndarray) and image.ndim == 2:  # grayscale -> 3 channels, channels-first
            image = np.repeat(image[None], 3, axis=0)
            kwargs["input_data_format"] = ChannelDimension.FIRST
        do_rescale = kwargs.get("do_rescale")
        if (self.do_rescale if do_rescale is None else do_rescale) and isinstance(image, np.ndarray):
            if image.dtype.kind == "f" and is_scaled_image(image):
                logger.warning_once(
                    "It looks like you are trying to rescale already rescaled images. If the input images have pixel "
                    "values between 0 and 1, set `do_rescale=False` to avoid rescaling them again."
                )
        return super().process_image(image, *args, **kwargs)


def _is_2d_array(image) -> bool:
    """A NumPy array or torch tensor of shape `(height, width)`."""
    return not isinstance(image, (list, tuple)) and getattr(image, "ndim", None) == 2


def _read_by_range(image: ImageInput) -> ImageInput:
    """16-bit PIL images and `uint16` arrays from [0, 65535], mode-`F` PIL images from [0, 1] and bool arrays from
    {False, True} -> uint8 arrays (PIL images `(height, width)`, arrays in their own layout); tensors -> arrays; other
    images are returned unchanged. Raises `ValueError` for an empty image or values outside the range of their kind."""
    if hasattr(image, "numpy") and not isinstance(image, np.ndarray):  # a torch tensor
        image = image.numpy()
    size = image.shape if isinstance(image, np.ndarray) else getattr(image, "size", ())
    if 0 in size:
        raise ValueError(f"`images` must have at least one pixel, got an image of size {tuple(size)}.")
    mode = getattr(image, "mode", None)
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return _to_uint8(np.asarray(image, dtype=np.float64), 1.0 if mode == "F" else 65535.0, f"a mode-{mode} image")
    if isinstance(image, np.ndarray) and image.dtype == np.uint16:
        return _to_uint8(image, 65535.0, "a uint16 array")
    if isinstance(image, np.ndarray) and image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    return image


def _to_uint8(values: np.ndarray, maximum: float, what: str) -> np.ndarray:
    """`values` in [0, `maximum`] -> uint8 in [0, 255], rounded."""
    if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= maximum):
        raise ValueError(
            f"`images`: the values of {what} must be in [0, {maximum:g}], got [{values.min()}, {values.max()}]."
        )
    return np.round(values * (255.0 / maximum)).astype(np.uint8)


__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "FLOWERS102_MEAN",
    "FLOWERS102_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CCTImageProcessor",
]
