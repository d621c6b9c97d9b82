"""Pixel-space reconstruction losses: MSE (ViTok's main term), Charbonnier (smooth L1) and SSIM."""

from __future__ import annotations

import torch
from pytorch_msssim import ssim

from ..utils import fold_frames_into_batch


def charbonnier_loss(input: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean of ``sqrt((input - target)^2 + eps^2)``, a differentiable L1 (the ViTok-v2 recipe)."""
    return torch.sqrt((input - target).pow(2) + eps**2).mean()


def ssim_loss(input: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """``1 - SSIM`` (Gaussian window 11, sigma 1.5; pytorch-msssim), per frame for videos.

    Args:
        input: (B, C, H, W) or (B, C, T, H, W) in a range of width ``data_range`` (2 for [-1, 1]).
        target: same shape as ``input``.
    """
    input, target = fold_frames_into_batch(input), fold_frames_into_batch(target)
    return 1.0 - ssim(input.float(), target.float(), data_range=data_range, size_average=True)
