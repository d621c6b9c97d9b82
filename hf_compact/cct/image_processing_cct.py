"""Image processor of the CCT vision family: resize to the model resolution, rescale to [0, 1], normalise.

This file may import only `transformers` (and sibling files): `register_for_auto_class` copies it next to the
weights for `trust_remote_code` users.
"""

from transformers.image_processing_backends import PilBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

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
    """

    resample = PILImageResampling.BICUBIC  # the official (timm) evaluation interpolation
    image_mean = CIFAR10_MEAN
    image_std = CIFAR10_STD
    size = {"height": 32, "width": 32}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True


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
