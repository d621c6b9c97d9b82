"""``save_sample_grid``: the tiling, and the class names beside the rows of a PNG grid and a GIF of videos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

from hf_compact.utils.sample_grid import LABEL_PADDING, save_sample_grid


def samples(batch: int, size: int, frames: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (batch, size, size, 3) if frames is None else (batch, frames, size, size, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def margin_of(image: Image.Image, grid_width: int) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB"))
    return pixels[:, : pixels.shape[1] - grid_width]


def test_unlabelled_grid_tiles_row_major(tmp_path):
    images = samples(6, 16)
    path = save_sample_grid(images, 2, tmp_path / "grid.jpg")
    assert path.suffix == ".png"
    grid = np.asarray(Image.open(path))
    assert grid.shape == (32, 48, 3)
    np.testing.assert_array_equal(grid[16:32, 16:32], images[4])  # row 1, column 1


def test_labelled_image_grid_has_a_readable_margin(tmp_path):
    images = samples(6, 24)
    path = save_sample_grid(images, 3, tmp_path / "grid", row_labels=["zero", "one", "seven"])
    grid = Image.open(path)
    margin_width = grid.width - 2 * 24
    assert grid.height == 3 * 24 and margin_width > 2 * LABEL_PADDING  # rows tall enough: no enlargement
    pixels = np.asarray(grid.convert("RGB"))
    np.testing.assert_array_equal(pixels[24:48, margin_width + 24 :], images[3])  # the samples are untouched
    margin = pixels[:, :margin_width]
    rows = [margin[24 * row : 24 * (row + 1)] for row in range(3)]
    assert all((row < 128).any() for row in rows)  # dark text beside every row, on white
    assert (margin == 255).mean() > 0.5
    assert not np.array_equal(rows[0], rows[1]) and not np.array_equal(rows[1], rows[2])  # each row its own name


def test_short_rows_are_enlarged_to_fit_the_labels(tmp_path):
    images = samples(4, 4)
    path = save_sample_grid(images, 2, tmp_path / "grid", row_labels=["a", "b"])
    grid = Image.open(path)
    scale = grid.height // 8
    assert scale > 1 and grid.height == 8 * scale
    pixels = np.asarray(grid.convert("RGB"))
    enlarged = np.kron(images[0], np.ones((scale, scale, 1), dtype=np.uint8))
    np.testing.assert_array_equal(pixels[: scale * 4, grid.width - 2 * 4 * scale : grid.width - 4 * scale], enlarged)


def test_labelled_video_gif_shows_the_class_in_every_frame(tmp_path):
    clips = samples(4, 24, frames=3)
    path = save_sample_grid(clips, 2, tmp_path / "clips", row_labels=["left", "right"])
    assert path.suffix == ".gif"
    frames = [frame.copy() for frame in ImageSequence.Iterator(Image.open(path))]
    assert len(frames) == 3
    for frame in frames:
        margin = margin_of(frame, 2 * 24)
        assert frame.height == 48 and margin.shape[1] > 0
        assert (margin[:24] < 128).any() and (margin[24:] < 128).any()


@pytest.mark.parametrize("row_labels", [["only one"], "ab", ["a", 2]])
def test_row_labels_must_name_every_row(tmp_path, row_labels):
    with pytest.raises(ValueError, match="row_labels: expected 2 strings"):
        save_sample_grid(samples(4, 8), 2, tmp_path / "grid", row_labels=row_labels)
