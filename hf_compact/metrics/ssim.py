"""Structural similarity (reconstruction SSIM, rSSIM in ViTok), computed with pytorch-msssim."""

from __future__ import annotations

import torch
from pytorch_msssim import ssim

from .per_image import PerImageMeanMetric

SSIM_WINDOW_SIZE = 11


class StructuralSimilarity(PerImageMeanMetric):
    """Mean per-image SSIM (Gaussian window 11, sigma 1.5, K = (0.01, 0.03)), with the ``evaluate.Metric`` protocol.

    Images are mapped to [0, 1] (predictions clamped) and scored with ``pytorch_msssim.ssim(data_range=1)``,
    channels averaged; videos are scored frame by frame.
    """

    name = "ssim"

    def score(self, predictions: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        height, width = predictions.shape[-2:]
        if min(height, width) < SSIM_WINDOW_SIZE:
            raise ValueError(
                f"predictions: expected images of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} pixels (the SSIM "
                f"window), got {height}x{width}."
            )
        return ssim(predictions, references, data_range=1.0, win_size=SSIM_WINDOW_SIZE, size_average=False)
