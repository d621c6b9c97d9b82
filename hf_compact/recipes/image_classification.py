"""CCT / CVT / ViT-Lite image classifiers and their image processors, as the image recipes build them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from datasets import Dataset
from transformers import AutoImageProcessor, AutoModelForImageClassification

from ..cct import CCTConfig, CCTForImageClassification, CCTImageProcessor
from ..data.loading import load_image_classification_data, quiet_progress_bars
from ..utils.overrides import check_override_keys, init_keywords, parse_overrides


def build_image_classifier(
    label_names: Sequence[str],
    preset: str | None = None,
    model_name_or_path: str | None = None,
    config_overrides: Mapping | None = None,
    image_size: int | None = None,
    ignore_mismatched_sizes: bool = False,
) -> CCTForImageClassification:
    """A fresh ``preset`` (with ``config_overrides``) or the saved ``model_name_or_path``, classifying
    ``label_names``, at ``image_size`` pixels (default: the preset's or the saved model's)."""
    id2label = dict(enumerate(label_names))
    label2id = {name: index for index, name in id2label.items()}
    if (preset is None) == (model_name_or_path is None):
        raise ValueError(
            f"preset / model_name_or_path: expected exactly one of them, got {preset!r} and {model_name_or_path!r}."
        )
    if preset is not None:
        overrides = dict(config_overrides or {})
        check_override_keys(overrides, init_keywords(CCTConfig))
        if image_size is not None:
            overrides["image_size"] = image_size
        config = CCTConfig.from_preset(preset, id2label=id2label, label2id=label2id, **overrides)
        return CCTForImageClassification(config)
    if config_overrides:
        raise ValueError("--config_overrides: expected no overrides for a saved model (--model_name_or_path).")
    with quiet_progress_bars():
        model = AutoModelForImageClassification.from_pretrained(
            model_name_or_path, id2label=id2label, label2id=label2id, ignore_mismatched_sizes=ignore_mismatched_sizes
        )
    if image_size is not None and image_size != model.config.image_size:
        model = change_resolution(model, image_size)
    return model


def change_resolution(model: CCTForImageClassification, image_size: int) -> CCTForImageClassification:
    """The same model built for ``image_size`` pixels, its learnable position embeddings resized bilinearly (how
    the official recipe fine-tunes the 224 px ImageNet CCT at 384 px)."""
    config = CCTConfig.from_dict({**model.config.to_dict(), "image_size": image_size})
    resized = CCTForImageClassification(config)
    state_dict = model.state_dict()
    if config.position_embedding_type == "learnable":
        new_grid_size = resized.cct.embeddings.grid_size
        embeddings = model.cct.embeddings.interpolate_pos_encoding(new_grid_size).detach()
        state_dict["cct.embeddings.position_embeddings"] = embeddings
    resized.load_state_dict(state_dict)
    return resized


def build_image_processor(
    image_size: int,
    model_name_or_path: str | None = None,
    crop_pct: float = 1.0,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
) -> CCTImageProcessor:
    """Resize (and centre-crop when ``crop_pct < 1``: resize to ``image_size / crop_pct``, crop ``image_size``);
    normalise with ``image_mean`` / ``image_std``, else the saved model's statistics, else the processor's."""
    kwargs = {}
    if model_name_or_path is not None:
        try:
            saved = AutoImageProcessor.from_pretrained(model_name_or_path).to_dict()
        except OSError:  # a converted checkpoint without a processor file
            saved = {}
        kwargs = {key: saved[key] for key in ("image_mean", "image_std") if key in saved}
    if image_mean is not None:
        kwargs["image_mean"] = list(image_mean)
    if image_std is not None:
        kwargs["image_std"] = list(image_std)
    if crop_pct < 1.0:
        kwargs.update(
            size={"shortest_edge": int(math.floor(image_size / crop_pct))},
            do_center_crop=True,
            crop_size={"height": image_size, "width": image_size},
        )
    else:
        kwargs["size"] = {"height": image_size, "width": image_size}
    return CCTImageProcessor(**kwargs)


__all__ = ["build_image_classifier", "build_image_processor", "change_resolution"]


def image_classification_data(options) -> tuple[Dataset, Dataset, list[str]]:
    """The training and evaluation splits and the class names that the image recipes' data flags describe.

    ``options`` is anything with the recipes' flag names as attributes (an argparse namespace, or the options
    dataclass of a ``Trainer`` script): ``dataset_name``, ``train_dir``, ``image_column_name``, ``seed``, ...
    """
    return load_image_classification_data(
        options.dataset_name,
        options.dataset_config_name,
        options.train_dir,
        options.validation_dir,
        image_column=options.image_column_name,
        label_column=options.label_column_name,
        image_size=options.image_size or 32,
        held_out_fraction=options.train_val_split,
        max_train_samples=options.max_train_samples,
        max_eval_samples=options.max_eval_samples,
        seed=options.seed,
    )


def image_classifier(options, label_names: Sequence[str]) -> CCTForImageClassification:
    """:func:`build_image_classifier` from the image recipes' model flags (``preset``, ``model_name_or_path``,
    ``config_overrides``, ``image_size``, ``ignore_mismatched_sizes``) on ``options``."""
    return build_image_classifier(
        label_names,
        preset=options.preset,
        model_name_or_path=options.model_name_or_path,
        config_overrides=parse_overrides(options.config_overrides),
        image_size=options.image_size,
        ignore_mismatched_sizes=options.ignore_mismatched_sizes,
    )
