"""Image processor of the CCT vision family: resize to the model resolution, rescale to [0, 1], normalise.

This file may import only `transformers`, NumPy and sibling files: `register_for_auto_class` copies it next to the
weights for `trust_remote_code` users.
"""

import numpy as np
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ImageInput,
    PILImageResampling,
    is_scaled_image,
)
from transformers.utils import logging

logger = logging.get_logger(__name__)

# PIL modes of 16-bit single-channel images (e.g. 16-bit PNGs); `Image.convert("RGB")` clips them at 255.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")

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

    16-bit images (PIL modes `I;16*`, NumPy `uint16`) are scaled from their range [0, 65535] to 8 bits first (PIL's
    own RGB conversion clips them at 255, so they would come out white). As transformers' processors do, a warning is
    logged when `do_rescale=True` meets images already in [0, 1] (pass `do_rescale=False` for those).
    """

    resample = PILImageResampling.BICUBIC  # the official (timm) evaluation interpolation
    image_mean = CIFAR10_MEAN
    image_std = CIFAR10_STD
    size = {"height": 32, "width": 32}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    def process_image(self, image: ImageInput, *args, **kwargs) -> np.ndarray:
        """One image -> channels-first NumPy array, 16-bit images scaled to 8 bits first (see the class docstring)."""
        image = _sixteen_bit_to_eight_bit(image)
        do_rescale = kwargs.get("do_rescale")
        if (self.do_rescale if do_rescale is None else do_rescale) and isinstance(image, np.ndarray):
            if image.size and image.dtype.kind == "f" and is_scaled_image(image):
                logger.warning_once(
                    "It looks like you are trying to rescale already rescaled images. If the input images have pixel "
                    "values between 0 and 1, set `do_rescale=False` to avoid rescaling them again."
                )
        return super().process_image(image, *args, **kwargs)


def _sixteen_bit_to_eight_bit(image: ImageInput) -> ImageInput:
    """Maps a 16-bit PIL image or `uint16` array from [0, 65535] onto a uint8 [0, 255] array; other images are
    returned unchanged."""
    if getattr(image, "mode", None) in _SIXTEEN_BIT_MODES:  # a PIL image: grayscale (height, width) -> RGB
        image = np.repeat(np.asarray(image, dtype=np.uint16)[..., None], 3, axis=-1)
    if isinstance(image, np.ndarray) and image.dtype == np.uint16:
        return np.round(image / 257.0).astype(np.uint8)
    return image


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
