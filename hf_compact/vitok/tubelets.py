"""Tubelet (spatio-temporal patch) embedding and the inverse pixel head of ViTok."""

from __future__ import annotations

import torch
from torch import nn

PATCH_EMBED_TYPES = ("conv", "linear")


def patchify(video: torch.Tensor, tubelet_size: int, patch_size: int) -> torch.Tensor:
    """Cuts ``(B, C, T, H, W)`` into tubelet tokens ``(B, N, C * q * p * p)`` in raster (t, h, w) order.

    Features are channel-major inside a tubelet (``c, dt, dy, dx``), which for ``q == 1`` is the layout of
    ``torch.nn.functional.unfold`` and of ViTok-v2.
    """
    batch, channels, frames, height, width = video.shape
    q, p = tubelet_size, patch_size
    tubelets = video.reshape(batch, channels, frames // q, q, height // p, p, width // p, p)
    tubelets = tubelets.permute(0, 2, 4, 6, 1, 3, 5, 7)
    num_tubelets = (frames // q) * (height // p) * (width // p)
    return tubelets.reshape(batch, num_tubelets, channels * q * p * p)


def unpatchify(
    tokens: torch.Tensor, grid_size: tuple[int, int, int], tubelet_size: int, patch_size: int
) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, N, C * q * p * p)`` -> ``(B, C, T, H, W)``."""
    (t, h, w), q, p = grid_size, tubelet_size, patch_size
    batch = tokens.shape[0]
    channels = tokens.shape[-1] // (q * p * p)
    video = tokens.reshape(batch, t, h, w, channels, q, p, p).permute(0, 4, 1, 5, 2, 6, 3, 7)
    return video.reshape(batch, channels, t * q, h * p, w * p)


class TubeletEmbed(nn.Module):
    """Maps ``(B, C, T, H, W)`` pixels to ``(B, N, width)`` tokens, ``N = T/q * H/p * W/p`` in raster order.

    ``embed_type="conv"`` (ViTok-v1): ``proj`` is ``Conv3d(C, width, kernel=stride=(q, p, p))``.
    ``embed_type="linear"`` (ViTok-v2): ``proj`` is ``Linear(C * q * p * p, width)`` on :func:`patchify` tokens.
    Both compute the same function family; they differ in parameter layout only.
    """

    def __init__(self, in_channels: int, width: int, tubelet_size: int, patch_size: int, embed_type: str = "conv"):
        super().__init__()
        if embed_type not in PATCH_EMBED_TYPES:
            raise ValueError(f"patch_embed_type must be one of {PATCH_EMBED_TYPES}, got {embed_type!r}")
        self.tubelet_size, self.patch_size, self.embed_type = tubelet_size, patch_size, embed_type
        kernel = (tubelet_size, patch_size, patch_size)
        if embed_type == "conv":
            self.proj = nn.Conv3d(in_channels, width, kernel_size=kernel, stride=kernel)
        else:
            self.proj = nn.Linear(in_channels * tubelet_size * patch_size**2, width)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if self.embed_type == "conv":
            return self.proj(video).flatten(2).transpose(1, 2)
        return self.proj(patchify(video, self.tubelet_size, self.patch_size))


class TubeletHead(nn.Module):
    """Maps ``(B, N, width)`` tokens on a ``(t, h, w)`` grid back to ``(B, C, t*q, h*p, w*p)`` pixels.

    ``embed_type="conv"`` (ViTok-v1): ``proj`` is ``ConvTranspose3d(width, C, kernel=stride=(q, p, p))``.
    ``embed_type="linear"`` (ViTok-v2): ``proj`` is ``Linear(width, C * q * p * p)`` then :func:`unpatchify`.
    No activation or clamp.
    """

    def __init__(self, width: int, out_channels: int, tubelet_size: int, patch_size: int, embed_type: str = "conv"):
        super().__init__()
        if embed_type not in PATCH_EMBED_TYPES:
            raise ValueError(f"patch_embed_type must be one of {PATCH_EMBED_TYPES}, got {embed_type!r}")
        self.tubelet_size, self.patch_size, self.embed_type = tubelet_size, patch_size, embed_type
        kernel = (tubelet_size, patch_size, patch_size)
        if embed_type == "conv":
            self.proj = nn.ConvTranspose3d(width, out_channels, kernel_size=kernel, stride=kernel)
        else:
            self.proj = nn.Linear(width, out_channels * tubelet_size * patch_size**2)

    def forward(self, tokens: torch.Tensor, grid_size: tuple[int, int, int]) -> torch.Tensor:
        if self.embed_type == "conv":
            grid = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], *grid_size)
            return self.proj(grid)
        return unpatchify(self.proj(tokens), grid_size, self.tubelet_size, self.patch_size)
