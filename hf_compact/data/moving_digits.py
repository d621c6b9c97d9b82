"""Moving digits: short class-labelled videos made from scikit-learn's real handwritten digits (no download)."""

from __future__ import annotations

import numpy as np
from datasets import Array4D, Dataset, DatasetDict, Features

from .digits import load_digits_dataset


def _trajectory(rng: np.random.Generator, num_frames: int, travel: int) -> list[tuple[int, int]]:
    """Top-left corners of a digit moving in a straight line, bouncing off the canvas borders."""
    position = rng.uniform(0, travel, size=2)
    velocity = rng.uniform(1.0, 2.5, size=2) * rng.choice([-1.0, 1.0], size=2)
    corners = []
    for _ in range(num_frames):
        corners.append((int(round(position[0])), int(round(position[1]))))
        position = position + velocity
        for axis in range(2):
            if not 0 <= position[axis] <= travel:
                velocity[axis] = -velocity[axis]
                position[axis] = np.clip(position[axis], 0, travel)
    return corners


def make_moving_image_videos(
    images: Dataset,
    num_frames: int = 4,
    image_size: int = 32,
    seed: int = 0,
    image_column: str = "image",
    label_column: str = "label",
) -> Dataset:
    """Turn an image-classification split into clips of each image gliding over a black canvas.

    Every image (all of one size, at most ``image_size``) becomes one clip with its own random start and velocity
    (fixed by ``seed``), keeping its label and the label feature.

    Returns:
        ``Dataset`` with ``video`` ``(num_frames, image_size, image_size, 3)`` uint8 and the label column.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames: expected at least 1, got {num_frames}.")
    sprites = np.stack([np.asarray(image.convert("RGB")) for image in images[image_column]])
    sprite_height, sprite_width = sprites.shape[1:3]
    if max(sprite_height, sprite_width) > image_size:
        raise ValueError(
            f"images: expected images no larger than image_size={image_size}, got {sprite_height}x{sprite_width}."
        )
    rng = np.random.default_rng(seed)
    travel = image_size - max(sprite_height, sprite_width)
    videos = np.zeros((len(sprites), num_frames, image_size, image_size, 3), dtype=np.uint8)
    for index, sprite in enumerate(sprites):
        for frame, (top, left) in enumerate(_trajectory(rng, num_frames, travel)):
            videos[index, frame, top : top + sprite_height, left : left + sprite_width] = sprite
    features = Features(
        {
            "video": Array4D(shape=(num_frames, image_size, image_size, 3), dtype="uint8"),
            label_column: images.features[label_column],
        }
    )
    return Dataset.from_dict({"video": list(videos), label_column: images[label_column]}, features=features)


def load_moving_digits_dataset(
    num_frames: int = 4, image_size: int = 32, digit_size: int = 20, seed: int = 0
) -> DatasetDict:
    """Videos of one real handwritten digit (:func:`load_digits_dataset`, same split) gliding over a black
    canvas, labelled with the digit's class ``"0"`` ... ``"9"``.

    Args:
        num_frames: frames per clip ``T``.
        image_size: canvas height and width.
        digit_size: side of the digit inside the canvas (8 to ``image_size``).
        seed: seed of the trajectories.
    """
    if not 8 <= digit_size <= image_size:
        raise ValueError(f"digit_size: expected a value in [8, image_size={image_size}], got {digit_size}.")
    digits = load_digits_dataset(image_size=digit_size)
    return DatasetDict(
        {
            name: make_moving_image_videos(split, num_frames, image_size, seed=seed + offset)
            for offset, (name, split) in enumerate(digits.items())
        }
    )
