"""Save class-conditional samples as one grid: a PNG for images, an animated GIF for videos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def save_sample_grid(
    samples: np.ndarray, num_rows: int, path: str | os.PathLike, frame_duration_ms: int = 250
) -> Path:
    """Tile samples row-major into ``num_rows`` rows (one row per class when sampled class by class).

    Args:
        samples: ``(B, H, W, 3)`` images or ``(B, T, H, W, 3)`` videos, float in [0, 1] (pipeline ``"np"``
            output) or uint8; ``B`` must be a multiple of ``num_rows``.
        num_rows: grid rows.
        path: output file; the suffix is set to ``.png`` (images) or ``.gif`` (videos).

    Returns:
        The written file.
    """
    if samples.ndim == 4:
        samples = samples[:, None]
    if samples.ndim != 5 or samples.shape[-1] != 3:
        raise ValueError(f"samples: expected (B, H, W, 3) or (B, T, H, W, 3), got shape {samples.shape}.")
    if num_rows < 1 or samples.shape[0] % num_rows:
        raise ValueError(f"num_rows: expected a positive divisor of the {samples.shape[0]} samples, got {num_rows}.")
    if samples.dtype != np.uint8:
        samples = (np.clip(samples, 0, 1) * 255).round().astype(np.uint8)
    batch, frames, height, width, _ = samples.shape
    columns = batch // num_rows
    grid = samples.reshape(num_rows, columns, frames, height, width, 3).transpose(2, 0, 3, 1, 4, 5)
    grid = np.ascontiguousarray(grid.reshape(frames, num_rows * height, columns * width, 3))
    path = Path(path).with_suffix(".png" if frames == 1 else ".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in grid]
    if frames == 1:
        images[0].save(path)
    else:
        images[0].save(path, save_all=True, append_images=images[1:], duration=frame_duration_ms, loop=0)
    return path
