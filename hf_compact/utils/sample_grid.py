"""Save class-conditional samples as one grid: a PNG for images, an animated GIF for videos, rows labelled."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_PADDING = 4  # pixels around the label text, in the left margin


def save_sample_grid(
    samples: np.ndarray,
    num_rows: int,
    path: str | os.PathLike,
    frame_duration_ms: int = 250,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Tile samples row-major into ``num_rows`` rows (one row per class when sampled class by class).

    Args:
        samples: ``(B, H, W, 3)`` images or ``(B, T, H, W, 3)`` videos, float in [0, 1] (pipeline ``"np"``
            output) or uint8; ``B`` must be a multiple of ``num_rows``.
        num_rows: grid rows.
        path: output file; the suffix is set to ``.png`` (images) or ``.gif`` (videos).
        frame_duration_ms: GIF frame duration.
        row_labels: optional ``num_rows`` names (e.g. the class of each row), written with PIL's default font into
            a white left margin, in every frame. Samples shorter than a line of text are enlarged (nearest
            neighbour, by the smallest integer factor) so that each label sits beside its row.

    Returns:
        The written file.
    """
    if samples.ndim == 4:
        samples = samples[:, None]
    if samples.ndim != 5 or samples.shape[-1] != 3:
        raise ValueError(f"samples: expected (B, H, W, 3) or (B, T, H, W, 3), got shape {samples.shape}.")
    if num_rows < 1 or samples.shape[0] % num_rows:
        raise ValueError(f"num_rows: expected a positive divisor of the {samples.shape[0]} samples, got {num_rows}.")
    if row_labels is not None and (
        isinstance(row_labels, str) or len(row_labels) != num_rows or not all(isinstance(x, str) for x in row_labels)
    ):
        raise ValueError(f"row_labels: expected {num_rows} strings (one per row), got {row_labels!r}.")
    if samples.dtype != np.uint8:
        samples = (np.clip(samples, 0, 1) * 255).round().astype(np.uint8)
    batch, frames, height, width, _ = samples.shape
    columns = batch // num_rows
    grid = samples.reshape(num_rows, columns, frames, height, width, 3).transpose(2, 0, 3, 1, 4, 5)
    grid = np.ascontiguousarray(grid.reshape(frames, num_rows * height, columns * width, 3))
    images = [Image.fromarray(frame) for frame in grid]
    if row_labels is not None:
        images = label_rows(images, row_labels)
    path = Path(path).with_suffix(".png" if frames == 1 else ".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    if frames == 1:
        images[0].save(path)
    else:
        images[0].save(path, save_all=True, append_images=images[1:], duration=frame_duration_ms, loop=0)
    return path


def label_rows(frames: list[Image.Image], row_labels: Sequence[str]) -> list[Image.Image]:
    """Put ``row_labels`` (one per equal-height row) into a left margin of every frame.

    Frames whose rows are shorter than the text are enlarged by ``scale = ceil((text height + 2 * padding) / row
    height)``; the result is ``(margin + W * scale, H * scale)`` with ``margin = widest label + 2 * padding``.
    """
    font = ImageFont.load_default()
    boxes = [font.getbbox(label) for label in row_labels]  # (left, top, right, bottom) from the text origin
    line_top, line_bottom = font.getbbox("Ag")[1::2]
    width, height = frames[0].size
    row_height = height // len(row_labels)
    scale = max(1, math.ceil((line_bottom - line_top + 2 * LABEL_PADDING) / row_height))
    margin = max(box[2] - box[0] for box in boxes) + 2 * LABEL_PADDING

    canvas = Image.new("RGB", (margin + width * scale, height * scale), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (label, box) in enumerate(zip(row_labels, boxes)):
        row_center = (row + 0.5) * row_height * scale
        draw.text(
            (LABEL_PADDING - box[0], round(row_center - (line_top + line_bottom) / 2)), label, fill="black", font=font
        )
    labelled = []
    for frame in frames:
        frame_canvas = canvas.copy()
        frame_canvas.paste(frame.resize((width * scale, height * scale), Image.Resampling.NEAREST), (margin, 0))
        labelled.append(frame_canvas)
    return labelled
