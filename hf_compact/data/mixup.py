"""Mixup / CutMix on a batch with label-smoothed soft targets (timm's ``Mixup`` semantics, ``mode="batch"``)."""

from __future__ import annotations

import math

import torch
from torch import nn


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Label-smoothed one-hot targets ``(batch, num_classes)``: ``1 - smoothing + smoothing / num_classes`` on the
    true class and ``smoothing / num_classes`` elsewhere, so every row sums to 1."""
    if labels.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"labels: expected an integer tensor of class ids, got {labels.dtype}.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels: expected class ids in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]."
        )
    off_value = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off_value, device=labels.device)
    return targets.scatter_(1, labels[:, None].long(), 1.0 - smoothing + off_value)


class MixupCutmix(nn.Module):
    """Mixes every batch with its reversed copy, by Mixup or CutMix, and returns soft targets.

    With probability ``prob`` a batch is mixed; when both alphas are positive, CutMix is chosen with probability
    ``switch_prob``, else Mixup. The mixing weight ``lam`` ~ Beta(alpha, alpha) is shared by the batch (timm's
    ``mode="batch"``). CutMix pastes a box of area ``(1 - lam)`` of the image (clipped at the borders) and ``lam``
    is corrected to the pasted area. Targets are ``lam * smooth(y) + (1 - lam) * smooth(y.flip(0))``, to be used
    with soft-target cross-entropy (``torch.nn.functional.cross_entropy(logits, targets)``).

    Args:
        num_classes: number of classes of the targets.
        mixup_alpha: Beta parameter of Mixup (0 disables Mixup).
        cutmix_alpha: Beta parameter of CutMix (0 disables CutMix).
        prob: probability of mixing a batch.
        switch_prob: probability of CutMix rather than Mixup when both are enabled.
        label_smoothing: smoothing folded into the targets.

    Shapes: ``images`` ``(batch, channels, height, width)``, ``labels`` ``(batch,)`` int ->
    ``(images, targets)`` with ``targets`` ``(batch, num_classes)`` float, rows summing to 1.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
    ) -> None:
        super().__init__()
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                f"mixup_alpha, cutmix_alpha: expected non-negative values, got {mixup_alpha} and {cutmix_alpha}."
            )
        for name, value in (
            ("prob", prob),
            ("switch_prob", switch_prob),
            ("label_smoothing", label_smoothing),
        ):
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: expected a value in [0, 1], got {value}.")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or labels.shape != images.shape[:1]:
            raise ValueError(
                f"images, labels: expected shapes (batch, channels, height, width) and (batch,), got "
                f"{tuple(images.shape)} and {tuple(labels.shape)}."
            )
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        if not self.enabled or torch.rand(()).item() >= self.prob:
            return images, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or torch.rand(()).item() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = torch.distributions.Beta(alpha, alpha).sample().item()
        flipped = images.flip(0)
        if use_cutmix:
            (top, bottom, left, right), lam = self._random_box(images.shape[-2:], lam)
            images = images.clone()
            images[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
        else:
            images = images * lam + flipped * (1.0 - lam)
        return images, targets * lam + targets.flip(0) * (1.0 - lam)

    @staticmethod
    def _random_box(image_shape: torch.Size, lam: float) -> tuple[tuple[int, int, int, int], float]:
        """A box of area ``(1 - lam)`` of the image centred uniformly at random and clipped to the image, and the
        ``lam`` corrected to the area that remains unpasted."""
        height, width = image_shape
        cut_ratio = math.sqrt(1.0 - lam)
        cut_height, cut_width = int(height * cut_ratio), int(width * cut_ratio)
        center_y = int(torch.randint(0, height, ()).item())
        center_x = int(torch.randint(0, width, ()).item())
        top, bottom = max(center_y - cut_height // 2, 0), min(center_y + cut_height // 2, height)
        left, right = max(center_x - cut_width // 2, 0), min(center_x + cut_width // 2, width)
        corrected_lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        return (top, bottom, left, right), corrected_lam


__all__ = ["MixupCutmix", "smooth_one_hot"]
