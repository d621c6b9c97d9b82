"""The demo's judge of moving-digit frames: each frame is cropped to its digit before the CCT reads it."""

from __future__ import annotations

import torch

from demo.judge import crop_to_digit


def test_crop_to_digit_fills_the_frame_with_the_digit_and_keeps_empty_frames():
    frames = torch.zeros(2, 3, 32, 32)
    frames[0, :, 4:14, 20:26] = 1.0  # a 10 x 6 digit near the top-right corner
    cropped = crop_to_digit(frames)
    assert cropped.shape == frames.shape
    bright_rows = (cropped[0].mean(0) > 0.5).any(1)
    assert bright_rows.all(), "the digit's height should span the whole cropped frame"
    bright_columns = (cropped[0].mean(0) > 0.5).any(0).nonzero().flatten()
    # the 6-pixel width is centred in the 10-pixel square: about 19 of 32 columns, in the middle
    assert 16 <= len(bright_columns) <= 22 and abs(bright_columns.float().mean().item() - 15.5) < 1.0
    assert torch.equal(cropped[1], frames[1])


def test_crop_to_digit_handles_a_digit_at_the_canvas_edge():
    frames = torch.zeros(1, 3, 32, 32)
    frames[0, :, 0:4, 0:12] = 1.0  # wider than tall, touching the top-left corner: the square reaches past it
    cropped = crop_to_digit(frames)
    assert (cropped[0].mean(0) > 0.5).any(0).all(), "the digit's width should span the whole cropped frame"
