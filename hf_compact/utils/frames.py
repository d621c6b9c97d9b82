"""Treat a video batch as a batch of frames, so image losses and metrics apply per frame."""

from __future__ import annotations

import torch
from einops import rearrange


def fold_frames_into_batch(pixels: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) videos -> (B*T, C, H, W) frames; (B, C, H, W) images pass through unchanged."""
    if pixels.ndim == 4:
        return pixels
    if pixels.ndim == 5:
        return rearrange(pixels, "b c t h w -> (b t) c h w")
    raise ValueError(
        f"pixels: expected images (B, C, H, W) or videos (B, C, T, H, W), got shape {tuple(pixels.shape)}."
    )
