"""Batched image-classification augmentations on tensors (kornia, no torchvision): the CCT/timm training recipe.

The data pipeline of the training scripts is split in two:

1. per example, the model's image processor resizes (and centre-crops) every image to the training resolution
   without normalising it (``do_normalize=False``), so examples of any size collate into one batch;
2. per batch, on the training device, [`ClassificationTrainAugmentation`] applies random-resized crop,
   horizontal flip, RandAugment, normalisation and random erasing; [`hf_compact.data.MixupCutmix`] then mixes the
   batch and its labels.

Randomness comes from torch's global generator, so ``torch.manual_seed`` (or ``accelerate.utils.set_seed``) makes
a run reproducible, and ``Accelerator.save_state`` / ``load_state`` resume it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from kornia.augmentation.auto import RandAugment as KorniaRandAugment
from torch import nn

# timm expresses RandAugment magnitudes on a 0..10 scale ("rand-m9-mstd0.5"); kornia on a 0..30 scale.
TIMM_MAX_MAGNITUDE = 10.0
KORNIA_MAX_MAGNITUDE = 30.0


class RandAugment(KorniaRandAugment):
    """RandAugment with timm's parametrisation (``rand-m{magnitude}-mstd{magnitude_std}``), on kornia's operations.

    ``num_ops`` operations are drawn from kornia's default RandAugment policy and applied in sequence; each one is
    applied to every image with probability ``op_probability`` (timm: 0.5). The magnitude, on timm's 0..10 scale,
    is ``magnitude`` plus Gaussian noise of std ``magnitude_std``, clipped to [0, 10].

    Differences from timm (kornia samples these per batch, timm per image): the chosen operations and the noisy
    magnitude are shared by the images of one batch. The per-image application probability and the sign of the
    symmetric operations (rotation, shear, translation) are drawn per image.

    Input and output: float images ``(batch, channels, height, width)`` in [0, 1].
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 9.0,
        magnitude_std: float = 0.5,
        op_probability: float = 0.5,
    ) -> None:
        if not 0 < magnitude <= TIMM_MAX_MAGNITUDE:
            raise ValueError(f"magnitude: expected a value in (0, {TIMM_MAX_MAGNITUDE:g}], got {magnitude}.")
        if magnitude_std < 0:
            raise ValueError(f"magnitude_std: expected a non-negative std, got {magnitude_std}.")
        if not 0 <= op_probability <= 1:
            raise ValueError(f"op_probability: expected a probability in [0, 1], got {op_probability}.")
        # kornia requires 0 < m < 30 at construction; the magnitude actually used is set per batch below.
        super().__init__(n=num_ops, m=1)
        self.magnitude = magnitude
        self.magnitude_std = magnitude_std
        for sub_policy in self.children():
            for operation in sub_policy.children():
                operation.op.p = op_probability

    def forward_parameters(self, batch_shape: torch.Size):
        magnitude = self.magnitude
        if self.magnitude_std > 0:
            magnitude = magnitude + self.magnitude_std * torch.randn(()).item()
        magnitude = min(max(magnitude, 0.0), TIMM_MAX_MAGNITUDE)
        self.m = magnitude * KORNIA_MAX_MAGNITUDE / TIMM_MAX_MAGNITUDE
        return super().forward_parameters(batch_shape)


class PixelRandomErasing(nn.Module):
    """Random erasing with per-pixel Gaussian noise (timm's ``mode="pixel"``), on normalised images.

    kornia's ``RandomErasing`` samples the rectangles (area ``scale`` of the image, aspect ``ratio``); the erased
    pixels are then replaced by standard-normal noise instead of a constant.
    """

    def __init__(
        self,
        p: float = 0.25,
        scale: tuple[float, float] = (0.02, 1 / 3),
        ratio: tuple[float, float] = (0.3, 1 / 0.3),
    ) -> None:
        super().__init__()
        self.erasing = K.RandomErasing(scale=scale, ratio=ratio, value=0.0, p=p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch_size, _, height, width = images.shape
        params = self.erasing.forward_parameters(torch.Size((batch_size, 1, height, width)))
        ones = torch.ones(batch_size, 1, height, width, device=images.device, dtype=images.dtype)
        erased = self.erasing(ones, params=params) == 0
        return torch.where(erased, torch.randn_like(images), images)


class ClassificationTrainAugmentation(nn.Module):
    """The training augmentation of the official CCT recipes, on a batch of images.

    In order: random-resized crop to ``image_size`` (area ``crop_scale``, aspect ``crop_ratio``), horizontal flip,
    [`RandAugment`], normalisation with ``image_mean`` / ``image_std``, pixel-mode random erasing. Set
    ``randaugment_num_ops=0``, ``hflip_prob=0`` or ``random_erasing_prob=0`` to switch a step off;
    ``crop_scale=None`` resizes the whole image instead of cropping.

    Args:
        image_size: output height and width.
        image_mean, image_std: per-channel normalisation (the image processor's).
        crop_scale: range of the crop area as a fraction of the image, e.g. ``(0.8, 1.0)`` (CIFAR recipes) or
            ``(0.08, 1.0)`` (ImageNet).
        crop_ratio: range of the crop aspect ratio.
        hflip_prob: probability of a horizontal flip.
        randaugment_num_ops, randaugment_magnitude, randaugment_magnitude_std: see [`RandAugment`].
        random_erasing_prob: probability of erasing one rectangle per image.

    Input: float ``(batch, 3, height, width)`` in [0, 1]. Output: normalised float ``(batch, 3, image_size,
    image_size)``.
    """

    def __init__(
        self,
        image_size: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        crop_scale: tuple[float, float] | None = (0.08, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip_prob: float = 0.5,
        randaugment_num_ops: int = 2,
        randaugment_magnitude: float = 9.0,
        randaugment_magnitude_std: float = 0.5,
        random_erasing_prob: float = 0.25,
    ) -> None:
        super().__init__()
        if len(image_mean) != 3 or len(image_std) != 3:
            raise ValueError(
                f"image_mean, image_std: expected 3 values each (RGB), got {len(image_mean)} and {len(image_std)}."
            )
        self.image_size = image_size
        size = (image_size, image_size)
        if crop_scale is None:
            geometric = [K.Resize(size, antialias=True)]
        else:
            geometric = [K.RandomResizedCrop(size, scale=crop_scale, ratio=crop_ratio)]
        if hflip_prob > 0:
            geometric.append(K.RandomHorizontalFlip(p=hflip_prob))
        self.geometric = nn.Sequential(*geometric)
        self.rand_augment = (
            RandAugment(randaugment_num_ops, randaugment_magnitude, randaugment_magnitude_std)
            if randaugment_num_ops > 0
            else nn.Identity()
        )
        self.normalize = K.Normalize(mean=torch.tensor(image_mean), std=torch.tensor(image_std))
        self.random_erasing = PixelRandomErasing(p=random_erasing_prob) if random_erasing_prob > 0 else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_unit_images(images, "images")
        images = self.geometric(images)
        images = self.rand_augment(images).clamp(0.0, 1.0)
        return self.random_erasing(self.normalize(images))


def check_unit_images(images: torch.Tensor, name: str) -> None:
    """Raise if ``images`` is not a float ``(batch, 3, height, width)`` tensor with values in [0, 1]."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        found = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"{name}: expected a float tensor with values in [0, 1], got {found}.")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (batch, 3, height, width), got {tuple(images.shape)}.")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"{name}: expected values in [0, 1] (not normalised), got [{images.min():.3g}, {images.max():.3g}]."
        )


__all__ = ["ClassificationTrainAugmentation", "PixelRandomErasing", "RandAugment", "check_unit_images"]
