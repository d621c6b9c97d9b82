"""Training data for the scripts in ``training/``: Hub datasets, image folders, CSV / JSON text files and the bundled
digits (the split policy is in :mod:`.splits`).

Local paths are taken literally (a folder named ``imgs [1]`` is that folder, never a glob pattern) and never sent to
the Hub. Image folders are checked before anything trains: every image is decoded once, and a file that cannot be
read refuses the run with its path (policy: refuse, never skip silently), as do an empty class folder and a folder
with a single class.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, load_dataset
from datasets import Image as ImageFeature
from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled
from PIL import Image
from transformers.utils import logging as transformers_logging

from .digits import load_digits_dataset
from .moving_digits import load_moving_digits_dataset
from .splits import HELD_OUT_FRACTION, split_for_evaluation, truncate

# Datasets generated on the fly (no download): name -> loader taking the image size.
BUNDLED_DATASETS = {
    "digits": lambda image_size: load_digits_dataset(image_size=image_size),
    "moving_digits": lambda image_size: load_moving_digits_dataset(image_size=image_size),
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TEXT_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}
# How many unreadable files an error lists by name.
MAX_LISTED_FILES = 10


def load_image_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_dir: str | os.PathLike | None = None,
    validation_dir: str | os.PathLike | None = None,
    image_size: int = 32,
    with_labels: bool = True,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Image data from one source: a bundled dataset (:data:`BUNDLED_DATASETS`, made at ``image_size``), a Hub
    dataset, or image folders (columns ``image`` and, ``with_labels``, ``label``: one sub-folder per class)."""
    if (dataset_name is None) == (train_dir is None):
        raise ValueError(
            f"dataset_name / train_dir: expected exactly one source of images, got {dataset_name!r} and "
            f"{None if train_dir is None else os.fspath(train_dir)!r}."
        )
    if dataset_name in BUNDLED_DATASETS:
        return BUNDLED_DATASETS[dataset_name](image_size)
    if dataset_name is not None:
        return load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    train = load_image_folder(train_dir, with_labels=with_labels)
    splits = DatasetDict(train=train)
    if validation_dir is not None:
        class_names = train.features["label"].names if with_labels else None
        splits["validation"] = load_image_folder(validation_dir, with_labels=with_labels, class_names=class_names)
    return splits


def load_image_folder(
    folder: str | os.PathLike, with_labels: bool = True, class_names: list[str] | None = None
) -> Dataset:
    """The images under ``folder`` (taken literally, searched recursively), checked before any training.

    With labels, each sub-folder of ``folder`` is a class (names sorted, as ``imagefolder`` does); ``class_names``
    fixes the classes (an evaluation folder uses the training folder's). Every image is decoded once here.

    Returns:
        a ``Dataset`` with an ``image`` column (decoded lazily from the file paths) and, with labels, a ``label``
        ``ClassLabel`` column.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: no images, an empty class folder, a single class, or a class that ``class_names`` lacks.
        OSError: files that cannot be decoded (listed by path).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{os.fspath(folder)!r}: expected a folder of images, which does not exist.")
    if not with_labels:
        files = _image_files(root)
        if not files:
            raise ValueError(f"{root}: expected image files {IMAGE_EXTENSIONS} in the folder, found none.")
        _check_images_decode(files)
        return Dataset.from_dict({"image": [str(path) for path in files]}, features=Features(image=ImageFeature()))

    class_folders = sorted(path for path in root.iterdir() if path.is_dir())
    files_per_class = {path.name: _image_files(path) for path in class_folders}
    if not class_folders:
        raise ValueError(f"{root}: expected one sub-folder of images per class, found no sub-folder.")
    empty = [name for name, files in files_per_class.items() if not files]
    if empty:
        raise ValueError(f"{root}: expected images {IMAGE_EXTENSIONS} in every class folder, found none in {empty}.")
    if class_names is None:
        class_names = list(files_per_class)
        if len(class_names) < 2:
            raise ValueError(
                f"{root}: expected at least 2 class folders for a classifier, found 1 ({class_names[0]!r}): put the "
                "images of each class in a sub-folder of its own."
            )
    unknown = sorted(set(files_per_class) - set(class_names))
    if unknown:
        raise ValueError(f"{root}: expected the classes of the training folder {class_names}, got also {unknown}.")
    files = [path for files in files_per_class.values() for path in files]
    _check_images_decode(files)
    labels = [class_names.index(name) for name, class_files in files_per_class.items() for _ in class_files]
    features = Features(image=ImageFeature(), label=ClassLabel(names=class_names))
    return Dataset.from_dict({"image": [str(path) for path in files], "label": labels}, features=features)


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted; hidden files and folders skipped)."""
    found = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        found += [
            Path(directory, name)
            for name in sorted(names)
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS
        ]
    return found


def _check_images_decode(files: list[Path]) -> None:
    unreadable = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, SyntaxError, ValueError) as error:  # PIL raises these three for broken files
            unreadable.append(f"{path} ({error})")
    if unreadable:
        listed = "\n  ".join(unreadable[:MAX_LISTED_FILES])
        more = f"\n  ... and {len(unreadable) - MAX_LISTED_FILES} more" if len(unreadable) > MAX_LISTED_FILES else ""
        raise OSError(
            f"{len(unreadable)} of {len(files)} images cannot be decoded; remove or repair them before training:"
            f"\n  {listed}{more}"
        )


def load_text_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | os.PathLike | None = None,
    validation_file: str | os.PathLike | None = None,
) -> DatasetDict:
    """Text data from a Hub dataset or local CSV / TSV / JSON (lines) files, which must exist (never looked up on
    the Hub)."""
    if (dataset_name is None) == (train_file is None):
        raise ValueError(
            f"dataset_name / train_file: expected exactly one source of texts, got {dataset_name!r} and "
            f"{None if train_file is None else os.fspath(train_file)!r}."
        )
    if dataset_name is not None:
        return load_dataset(dataset_name, dataset_config_name)
    data_files = {"train": train_file}
    if validation_file is not None:
        data_files["validation"] = validation_file
    builders = set()
    for split, path in data_files.items():
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{split} file: expected a CSV or JSON file, got {os.fspath(path)!r}, which does not exist."
            )
        if path.suffix.lower() not in TEXT_FILE_BUILDERS:
            raise ValueError(f"{split} file: expected one of {sorted(TEXT_FILE_BUILDERS)}, got {os.fspath(path)!r}.")
        builders.add(TEXT_FILE_BUILDERS[path.suffix.lower()])
    if len(builders) > 1:
        raise ValueError(f"train_file / validation_file: expected files of one format, got {data_files}.")
    builder = builders.pop()
    options = {"delimiter": "\t"} if Path(train_file).suffix.lower() == ".tsv" else {}
    with quiet_progress_bars():  # reading a local file: the download and split bars say nothing
        return load_dataset(
            builder, data_files={split: os.fspath(path) for split, path in data_files.items()}, **options
        )


def encode_class_labels(train: Dataset, evaluation: Dataset, label_column: str) -> tuple[Dataset, Dataset, list[str]]:
    """Both splits with ``label_column`` as a ``ClassLabel`` of class ids, and the class names.

    A ``ClassLabel`` column keeps its names; other labels (strings, or integers) become classes named by their
    sorted distinct values in the training split (integers sorted as numbers). An evaluation label that the
    training split lacks raises a ``ValueError`` naming it.
    """
    for dataset in (train, evaluation):
        if label_column not in dataset.column_names:
            raise ValueError(
                f"label_column_name: the dataset has columns {dataset.column_names}, got {label_column!r}."
            )
    feature = train.features[label_column]
    if isinstance(feature, ClassLabel):
        return train, evaluation, list(feature.names)
    values = set(train[label_column])
    if None in values:
        raise ValueError(f"--label_column_name: the column {label_column!r} has empty labels.")
    if all(isinstance(value, int) for value in values):
        class_values = sorted(values)
    else:
        class_values = sorted(values, key=str)
    names = [str(value) for value in class_values]
    label_ids = {str(value): index for index, value in enumerate(class_values)}
    unknown = sorted({str(value) for value in evaluation[label_column]} - set(label_ids))
    if unknown:
        raise ValueError(
            f"--label_column_name: the evaluation split has labels that the training split lacks: {unknown[:10]}."
        )

    def encode(dataset: Dataset) -> Dataset:
        features = dataset.features.copy()
        features[label_column] = ClassLabel(names=names)

        def to_ids(rows: dict) -> dict:
            return {label_column: [label_ids[str(value)] for value in rows[label_column]]}

        with quiet_progress_bars():
            return dataset.map(to_ids, batched=True, features=features)

    return encode(train), encode(evaluation), names


def load_image_classification_data(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_dir: str | os.PathLike | None = None,
    validation_dir: str | os.PathLike | None = None,
    image_column: str = "image",
    label_column: str = "label",
    image_size: int = 32,
    held_out_fraction: float = HELD_OUT_FRACTION,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 0,
) -> tuple[Dataset, Dataset, list[str]]:
    """``(train, evaluation, class names)`` of an image classification dataset (:func:`load_image_dataset`, split
    by :func:`~.splits.split_for_evaluation`), ``label_column`` as class ids (:func:`encode_class_labels`), the
    training split truncated to a ``seed``-shuffled ``max_train_samples``, the evaluation split to its first
    ``max_eval_samples``."""
    splits = load_image_dataset(dataset_name, dataset_config_name, train_dir, validation_dir, image_size)
    train, evaluation = split_for_evaluation(splits, held_out_fraction, seed)
    if image_column not in train.column_names:
        raise ValueError(f"--image_column_name: the dataset has columns {train.column_names}, got {image_column!r}.")
    train, evaluation, label_names = encode_class_labels(train, evaluation, label_column)
    return truncate(train, max_train_samples, seed=seed), truncate(evaluation, max_eval_samples), label_names


def load_text_classification_data(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | os.PathLike | None = None,
    validation_file: str | os.PathLike | None = None,
    text_column: str = "text",
    label_column: str = "label",
    held_out_fraction: float = HELD_OUT_FRACTION,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 0,
) -> tuple[Dataset, Dataset, list[str]]:
    """:func:`load_image_classification_data` for texts (:func:`load_text_dataset`): string or integer labels
    become class ids, named by their sorted distinct values."""
    splits = load_text_dataset(dataset_name, dataset_config_name, train_file, validation_file)
    train, evaluation = split_for_evaluation(splits, held_out_fraction, seed)
    if text_column not in train.column_names:
        raise ValueError(f"--text_column_name: the dataset has columns {train.column_names}, got {text_column!r}.")
    train, evaluation, label_names = encode_class_labels(train, evaluation, label_column)
    return truncate(train, max_train_samples, seed=seed), truncate(evaluation, max_eval_samples), label_names


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """``datasets``' and ``transformers``' progress bars off inside the block, restored after: for work whose bars
    say nothing (reading a local file, writing or reading the weights of a small model)."""
    datasets_bars, transformers_bars = is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    disable_progress_bars()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_bars:
            enable_progress_bars()
        if transformers_bars:
            transformers_logging.enable_progress_bar()


__all__ = [
    "BUNDLED_DATASETS",
    "encode_class_labels",
    "load_image_classification_data",
    "load_image_dataset",
    "load_image_folder",
    "load_text_classification_data",
    "load_text_dataset",
    "quiet_progress_bars",
]
