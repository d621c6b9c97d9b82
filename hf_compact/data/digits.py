"""scikit-learn's handwritten digits as an image-classification dataset (real data, no download)."""

from __future__ import annotations

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from PIL import Image as PILImage

DIGIT_NAMES = [str(digit) for digit in range(10)]


def load_digits_dataset(image_size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> DatasetDict:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits`` as RGB images with a fixed held-out split.

    Each digit (16 grey levels) is scaled to ``image_size`` x ``image_size`` with bicubic resampling and
    repeated over three channels, so it feeds any RGB model unchanged. The split is stratified by class
    and fixed by ``seed``.

    Returns:
        ``DatasetDict`` with ``"train"`` and ``"test"`` splits, columns ``image`` (PIL) and ``label``
        (``ClassLabel`` with names ``"0"`` ... ``"9"``).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if image_size < 8:
        raise ValueError(f"image_size: expected at least 8 (the digits are 8x8), got {image_size}.")
    digits = load_digits()
    grey_levels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = [
        PILImage.fromarray(image).resize((image_size, image_size), PILImage.BICUBIC).convert("RGB")
        for image in grey_levels
    ]
    indices = np.arange(len(images))
    train_indices, test_indices = train_test_split(
        indices, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    features = Features({"image": Image(), "label": ClassLabel(names=DIGIT_NAMES)})

    def split(selected: np.ndarray) -> Dataset:
        return Dataset.from_dict(
            {"image": [images[i] for i in selected], "label": digits.target[selected].tolist()},
            features=features,
        )

    return DatasetDict(train=split(train_indices), test=split(test_indices))


def digits_pixel_values(processor, image_size: int = 32) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """:func:`load_digits_dataset` preprocessed by an image ``processor`` (e.g. ``CCTImageProcessor``), whole.

    Returns:
        ``{"train": (pixel_values, labels), "test": (...)}``: ``(N, 3, H, W)`` float pixel values and ``(N,)`` int64
        labels; ``torch.utils.data.StackDataset(pixel_values=..., labels=...)`` makes ``Trainer`` rows of them.
    """
    return {
        name: (
            processor(list(split["image"]), return_tensors="pt")["pixel_values"],
            torch.tensor(split["label"], dtype=torch.long),
        )
        for name, split in load_digits_dataset(image_size=image_size).items()
    }
