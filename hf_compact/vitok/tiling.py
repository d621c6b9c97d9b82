"""Overlapping-tile processing with linear blending, as in diffusers' ``AutoencoderKL.tiled_encode/decode``."""

from __future__ import annotations

from collections.abc import Callable

import torch


def blend(previous: torch.Tensor, current: torch.Tensor, extent: int, dim: int) -> torch.Tensor:
    """Cross-fades the first ``extent`` entries of ``current`` along ``dim`` with the last ones of ``previous``."""
    extent = min(previous.shape[dim], current.shape[dim], extent)
    if extent == 0:
        return current
    shape = [1] * current.ndim
    shape[dim] = extent
    weight = (torch.arange(extent, device=current.device, dtype=current.dtype) / extent).view(shape)
    head = previous.narrow(dim, previous.shape[dim] - extent, extent) * (1 - weight)
    head = head + current.narrow(dim, 0, extent) * weight
    return torch.cat([head, current.narrow(dim, extent, current.shape[dim] - extent)], dim=dim)


def tiled_apply(
    inputs: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile_size: int,
    tile_stride: int,
    output_stride: int,
    blend_extent: int,
) -> torch.Tensor:
    """Applies ``fn`` to overlapping spatial tiles of ``inputs`` and stitches the results.

    Args:
        inputs: ``(..., H, W)``.
        fn: maps a tile ``(..., h, w)`` to ``(..., h * s, w * s)`` for a fixed scale ``s``.
        tile_size: input tile side.
        tile_stride: input distance between tile origins (``< tile_size`` for overlap).
        output_stride: ``tile_stride * s``: how much of each output tile is kept.
        blend_extent: output rows/columns cross-faded with the neighbouring tile.

    Returns:
        ``(..., H * s, W * s)``.
    """
    height, width = inputs.shape[-2:]
    rows = [
        [fn(inputs[..., top : top + tile_size, left : left + tile_size]) for left in range(0, width, tile_stride)]
        for top in range(0, height, tile_stride)
    ]
    stitched_rows = []
    for i, row in enumerate(rows):
        kept = []
        for j, tile in enumerate(row):
            if i > 0:
                tile = blend(rows[i - 1][j], tile, blend_extent, dim=-2)
            if j > 0:
                tile = blend(row[j - 1], tile, blend_extent, dim=-1)
            row[j] = tile
            kept.append(tile[..., :output_stride, :output_stride])
        stitched_rows.append(torch.cat(kept, dim=-1))
    return torch.cat(stitched_rows, dim=-2)
