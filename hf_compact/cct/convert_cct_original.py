"""Convert official CCT / CVT / ViT-Lite checkpoints (SHI-Labs/Compact-Transformers) to this package.

As a library: `convert_state_dict(official_state_dict, config)` returns the state dict of
`CCTForImageClassification(config)`. As a script:

    python -m hf_compact.cct.convert_cct_original --checkpoint cct_7_3x1_32_cifar10_300epochs.pth \
        --preset cct_7_3x1_32 --output ./cct_7_3x1_32-cifar10

writes a folder that `CCTForImageClassification.from_pretrained`, `AutoModelForImageClassification` and
`pipeline("image-classification")` load (model + `CCTImageProcessor` with the training dataset's statistics).
"""

import argparse
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers.utils import logging

from ..utils import check_state_dict
from .configuration_cct import CCT_PRESETS, CCTConfig
from .image_processing_cct import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    FLOWERS102_MEAN,
    FLOWERS102_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CCTImageProcessor,
)
from .modeling_cct import CCTForImageClassification, sinusoidal_position_table

logger = logging.get_logger(__name__)

# Official key pattern (SHI-Labs/Compact-Transformers: `src/cct.py`, `src/utils/tokenizer.py`,
# `src/utils/transformers.py`) -> this package's key.
OFFICIAL_TO_HF_KEYS: list[tuple[str, str]] = [
    (r"^tokenizer\.conv_layers\.(\d+)\.0\.", r"cct.embeddings.tokenizer.convolutions.\1."),
    (r"^classifier\.class_emb$", "cct.embeddings.class_token"),
    (r"^classifier\.positional_emb$", "cct.embeddings.position_embeddings"),
    (r"^classifier\.attention_pool\.", "cct.pooler.attention_pool."),
    (r"^classifier\.blocks\.(\d+)\.pre_norm\.", r"cct.encoder.layers.\1.layernorm_before."),
    (r"^classifier\.blocks\.(\d+)\.self_attn\.qkv\.", r"cct.encoder.layers.\1.attention.qkv."),
    (r"^classifier\.blocks\.(\d+)\.self_attn\.proj\.", r"cct.encoder.layers.\1.attention.out_proj."),
    (r"^classifier\.blocks\.(\d+)\.linear1\.", r"cct.encoder.layers.\1.mlp.fc1."),
    (r"^classifier\.blocks\.(\d+)\.norm1\.", r"cct.encoder.layers.\1.layernorm_after."),
    (r"^classifier\.blocks\.(\d+)\.linear2\.", r"cct.encoder.layers.\1.mlp.fc2."),
    (r"^classifier\.norm\.", "cct.layernorm."),
    (r"^classifier\.fc\.", "classifier."),
]
_SINE_TABLE_KEY = "classifier.positional_emb"
_SINE_TABLE_TOLERANCE = 1e-4
_HEAD_PREFIX = "classifier.fc."


def _unwrap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The tensors of a raw state dict, a `{"model": ...}` / `{"state_dict": ...}` wrapper (timm / training
    checkpoints) and/or keys prefixed with `module.` (DataParallel / DDP)."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"`state_dict` must be a mapping of names to tensors, got {type(checkpoint).__name__}.")
    for wrapper_key in ("model", "state_dict"):
        if isinstance(checkpoint.get(wrapper_key), Mapping):
            checkpoint = checkpoint[wrapper_key]
    state_dict = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"`state_dict` must map names to tensors, got {type(value).__name__} for {key!r}.")
        state_dict[key.removeprefix("module.")] = value
    return state_dict


def _rename(official_key: str) -> str | None:
    for pattern, replacement in OFFICIAL_TO_HF_KEYS:
        if re.match(pattern, official_key):
            return re.sub(pattern, replacement, official_key)
    return None


def _check_sine_table(table: torch.Tensor, config: CCTConfig) -> None:
    """The official code stores the (fixed) sine table in the state dict; this package recomputes it, so the stored
    one is only checked to be the sine table (a checkpoint trained with learnable embeddings needs a learnable
    preset)."""
    expected = sinusoidal_position_table(table.shape[-2], config.hidden_size).unsqueeze(0)
    if table.shape != expected.shape or not torch.allclose(table.float(), expected, atol=_SINE_TABLE_TOLERANCE):
        raise ValueError(
            f"`state_dict[{_SINE_TABLE_KEY!r}]` (shape {tuple(table.shape)}) is not the sine table that "
            f"position_embedding_type='sine' uses (expected shape {tuple(expected.shape)}): the checkpoint was "
            "trained with learnable position embeddings; convert it with position_embedding_type='learnable'."
        )


def convert_state_dict(
    state_dict: Mapping[str, object], config: CCTConfig, reset_classifier: bool = False
) -> dict[str, torch.Tensor]:
    """Maps an official CCT / CVT / ViT-Lite state dict to the keys of `CCTForImageClassification(config)`.

    Args:
        state_dict: the official `state_dict` (keys such as `tokenizer.conv_layers.0.0.weight`,
            `classifier.blocks.0.self_attn.qkv.weight`), possibly wrapped in `{"model": ...}` or
            `{"state_dict": ...}` and/or with `module.` prefixes.
        config: the configuration the checkpoint belongs to, e.g. `CCTConfig.from_preset("cct_7_3x1_32")`.
        reset_classifier: drop the official classification head (`classifier.fc.*`), e.g. to fine-tune on another
            class count; the result then has no `classifier.*` keys.

    Returns:
        A new dict of tensors with this package's keys; the official sine table (a fixed, recomputed buffer here) is
        checked and dropped.

    Raises:
        ValueError: naming every unexpected, missing or mis-shaped key.
    """
    with torch.device("meta"):
        expected_shapes = {key: value.shape for key, value in CCTForImageClassification(config).state_dict().items()}
    official = _unwrap(state_dict)
    if reset_classifier:
        official = {key: value for key, value in official.items() if not key.startswith(_HEAD_PREFIX)}
        expected_shapes = {key: shape for key, shape in expected_shapes.items() if not key.startswith("classifier.")}
    if config.position_embedding_type == "sine" and _SINE_TABLE_KEY in official:
        _check_sine_table(official.pop(_SINE_TABLE_KEY), config)

    # Keys no rule renames keep their official name, so that they are reported as unexpected.
    converted = {_rename(official_key) or official_key: tensor for official_key, tensor in official.items()}
    check_state_dict(converted, expected_shapes, "`state_dict`", target="the configuration")
    return converted


def load_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads an official checkpoint (`.pth`/`.pt` via `torch.load(weights_only=True)`, or `.safetensors`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"`checkpoint` must be an existing .pth/.pt/.safetensors file, got {str(path)!r}.")
    if path.suffix == ".safetensors":
        return load_file(path)
    if path.suffix in (".pth", ".pt", ".bin"):
        return torch.load(path, map_location="cpu", weights_only=True)
    raise ValueError(f"`checkpoint` must end with .pth, .pt, .bin or .safetensors, got {path.name!r}.")


def normalization_for_preset(preset: str) -> tuple[list[float], list[float]]:
    """`(image_mean, image_std)` of the dataset the official preset was trained on: CIFAR-100 for `*_c100`,
    Flowers-102 for 102-class presets, CIFAR-10 for the other 32 px presets, ImageNet for 224/384 px."""
    preset_config = CCT_PRESETS[preset]
    if preset.endswith("_c100"):
        return CIFAR100_MEAN, CIFAR100_STD
    if preset_config["num_labels"] == 102:
        return FLOWERS102_MEAN, FLOWERS102_STD
    if preset_config["image_size"] == 32:
        return CIFAR10_MEAN, CIFAR10_STD
    return IMAGENET_MEAN, IMAGENET_STD


def convert_checkpoint(
    checkpoint: str | Path, preset: str, output_dir: str | Path, num_labels: int | None = None
) -> CCTForImageClassification:
    """Converts an official checkpoint file and saves model + image processor to `output_dir`.

    With a `num_labels` other than the checkpoint's class count, the official head is dropped and the classifier
    keeps its fresh initialisation (as the official `fc_check` does), ready for fine-tuning.
    """
    overrides = {"num_labels": num_labels} if num_labels is not None else {}
    config = CCTConfig.from_preset(preset, **overrides)
    official = _unwrap(load_official_checkpoint(checkpoint))
    official_head = official.get(f"{_HEAD_PREFIX}weight")
    reset_classifier = official_head is not None and official_head.shape[0] != config.num_labels
    if reset_classifier:
        logger.warning(
            f"The checkpoint has {official_head.shape[0]} classes and the model {config.num_labels}: the classifier "
            "is newly initialised and needs fine-tuning."
        )
    model = CCTForImageClassification(config)
    converted = convert_state_dict(official, config, reset_classifier=reset_classifier)
    model.load_state_dict(converted, strict=not reset_classifier)
    image_mean, image_std = normalization_for_preset(preset)
    image_processor = CCTImageProcessor(
        size={"height": config.image_size, "width": config.image_size},
        image_mean=image_mean,
        image_std=image_std,
    )
    model.save_pretrained(output_dir)
    image_processor.save_pretrained(output_dir)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="official .pth or .safetensors file")
    parser.add_argument("--preset", required=True, choices=sorted(CCT_PRESETS), help="official variant name")
    parser.add_argument("--num_labels", type=int, default=None, help="class count, if not the preset's")
    parser.add_argument("--output", required=True, help="folder to write (save_pretrained layout)")
    args = parser.parse_args(argv)
    convert_checkpoint(args.checkpoint, args.preset, args.output, num_labels=args.num_labels)
    print(f"Saved {args.preset} to {args.output}")


if __name__ == "__main__":
    main()
