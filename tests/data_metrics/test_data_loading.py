"""hf_compact.data: the one image reader, image folders taken literally and checked before training, text files with
string labels, and the one split policy."""

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict
from PIL import Image

from hf_compact.data import ImageReconstructionTransform, read_image
from hf_compact.data.loading import encode_class_labels, load_image_folder, load_text_dataset
from hf_compact.data.splits import HELD_OUT_FRACTION, split_for_evaluation


def save_images(folder, count: int = 2, value: int = 128) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(folder / f"{index}.png")


# ------------------------------------------------------------------------------------------------ the image reader


def test_reader_scales_16_bit_and_float_images_by_their_range(tmp_path):
    sixteen_bit = np.full((4, 4), 51400, dtype=np.uint16)
    Image.fromarray(sixteen_bit).save(tmp_path / "deep.png")
    pixels = read_image(tmp_path / "deep.png")
    assert pixels.shape == (4, 4, 3) and pixels.dtype == np.float32
    np.testing.assert_allclose(pixels, 51400 / 65535, rtol=1e-6)
    np.testing.assert_allclose(read_image(Image.fromarray(np.full((4, 4), 0.8, dtype=np.float32))), 0.8, rtol=1e-6)
    np.testing.assert_allclose(read_image(Image.fromarray(np.full((4, 4), 51400, dtype=np.int32))), 51400 / 65535)
    np.testing.assert_allclose(read_image(np.full((4, 4, 4), 255, dtype=np.uint8)), 1.0)  # alpha dropped
    np.testing.assert_allclose(read_image(np.ones((4, 4), dtype=bool)), 1.0)
    with pytest.raises(ValueError, match=r"in \[0, 1\], got \[2.0, 2.0\]"):
        read_image(np.full((4, 4, 3), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="expected an"):
        read_image(np.zeros((0, 0, 3), dtype=np.uint8))


def test_vitok_transform_reads_a_16_bit_png_as_grey_not_white(tmp_path):
    Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16)).save(tmp_path / "grey.png")
    pixels = ImageReconstructionTransform(8, train=False)(Image.open(tmp_path / "grey.png"))
    torch.testing.assert_close(pixels, torch.full((3, 8, 8), 32768 / 65535 * 2 - 1), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ image folders


def test_folder_paths_are_literal_not_glob_patterns(tmp_path):
    save_images(tmp_path / "imgs [1]" / "cat")
    save_images(tmp_path / "imgs [1]" / "dog")
    save_images(tmp_path / "imgs 1" / "car")  # what the pattern "imgs [1]" matches
    save_images(tmp_path / "imgs 1" / "bus")
    dataset = load_image_folder(tmp_path / "imgs [1]")
    assert dataset.features["label"].names == ["cat", "dog"] and len(dataset) == 4
    assert np.asarray(dataset[0]["image"]).shape == (8, 8, 3)


def test_unreadable_empty_and_single_class_folders_are_refused_naming_the_problem(tmp_path):
    save_images(tmp_path / "data" / "a")
    save_images(tmp_path / "data" / "b")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.png")
    whole = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "data" / "b" / "broken.png").write_bytes(whole[: len(whole) * 3 // 4])  # a truncated download
    with pytest.raises(
        OSError, match=r"(?s)1 of 5 images cannot be decoded.*data/b/broken\.png \(image file is trunc"
    ):
        load_image_folder(tmp_path / "data")

    save_images(tmp_path / "empty_class" / "a")
    (tmp_path / "empty_class" / "b").mkdir()
    with pytest.raises(ValueError, match=r"every class folder, found none in \['b'\]"):
        load_image_folder(tmp_path / "empty_class")

    save_images(tmp_path / "one_class" / "a")
    with pytest.raises(ValueError, match="at least 2 class folders .* found 1 \\('a'\\)"):
        load_image_folder(tmp_path / "one_class")
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        load_image_folder(tmp_path / "no_such_folder")


def test_validation_folder_takes_the_training_classes(tmp_path):
    for split, classes in (("train", ("a", "b", "c")), ("val", ("c", "a"))):
        for name in classes:
            save_images(tmp_path / split / name, count=1)
    train = load_image_folder(tmp_path / "train")
    validation = load_image_folder(tmp_path / "val", class_names=train.features["label"].names)
    assert validation.features["label"].names == ["a", "b", "c"]
    assert list(validation["label"]) == [0, 2]
    save_images(tmp_path / "val" / "zebra", count=1)
    with pytest.raises(ValueError, match=r"also \['zebra'\]"):
        load_image_folder(tmp_path / "val", class_names=train.features["label"].names)


# ------------------------------------------------------------------------------------------------ text files


def test_string_labels_become_class_ids_named_by_their_sorted_values(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\nfine,pos\nawful,neg\nok,meh\n")
    (tmp_path / "valid.csv").write_text("text,label\ngreat,pos\nworse,neg\n")
    splits = load_text_dataset(train_file=tmp_path / "train.csv", validation_file=tmp_path / "valid.csv")
    train, evaluation, names = encode_class_labels(splits["train"], splits["validation"], "label")
    assert names == ["meh", "neg", "pos"]
    assert list(train["label"]) == [2, 1, 2, 1, 0] and list(evaluation["label"]) == [2, 1]
    assert isinstance(train.features["label"], ClassLabel)
    assert train.with_format("torch")[:2]["label"].tolist() == [2, 1]  # ids, ready for a tensor


def test_integer_labels_sort_as_numbers_and_unknown_evaluation_labels_are_named():
    train = Dataset.from_dict({"text": list("abcd"), "label": [10, 2, 2, 10]})
    evaluation = Dataset.from_dict({"text": list("ab"), "label": [2, 7]})
    with pytest.raises(ValueError, match=r"training split lacks: \['7'\]"):
        encode_class_labels(train, evaluation, "label")
    _, _, names = encode_class_labels(train, train, "label")
    assert names == ["2", "10"]


def test_a_missing_local_file_fails_at_once_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="train file: .*nothere.csv', which does not exist"):
        load_text_dataset(train_file=tmp_path / "nothere.csv")


# ------------------------------------------------------------------------------------------------ split policy


def test_one_split_policy():
    data = Dataset.from_dict({"x": list(range(100))})
    train, evaluation = split_for_evaluation(DatasetDict(train=data), seed=0)
    assert (len(train), len(evaluation)) == (100 - 100 * HELD_OUT_FRACTION, 100 * HELD_OUT_FRACTION)
    assert sorted([*train["x"], *evaluation["x"]]) == list(range(100))
    own = DatasetDict(train=data, valid=data.select(range(3)), test=data.select(range(5)))
    assert len(split_for_evaluation(own)[1]) == 3  # validation, valid, test: the first one present
