"""The bundled digits dataset used by the demos."""

import numpy as np
import pytest

from hf_compact.data import DIGIT_NAMES, load_digits_dataset


def test_digits_split_is_fixed_stratified_and_rgb():
    digits = load_digits_dataset(image_size=16)
    assert digits["train"].num_rows == 1437 and digits["test"].num_rows == 360
    assert digits["train"].features["label"].names == DIGIT_NAMES
    image = digits["test"][0]["image"]
    assert image.size == (16, 16) and image.mode == "RGB"
    test_labels = np.array(digits["test"]["label"])
    assert np.bincount(test_labels, minlength=10).min() >= 35  # every class held out
    again = load_digits_dataset(image_size=16)
    assert again["test"]["label"] == digits["test"]["label"]


def test_digits_rejects_tiny_size():
    with pytest.raises(ValueError, match="image_size"):
        load_digits_dataset(image_size=4)
