"""Convert official text Compact-Transformer checkpoints (SHI-Labs/Compact-Transformers `src/text`, the NLP README's
`text_cct*_agnews_*.pth` / `*_trec_*.pth`) to `TextCCTForSequenceClassification`.

`convert_state_dict` is a pure function of a state dict. The command line reads a `.pth`, infers the vocabulary,
word-vector width, kernel and class count from the tensor shapes, takes the encoder size from the official builder
name, checks that the converted model loads without missing or unexpected keys, and writes a `save_pretrained`
folder:

    python -m hf_compact.cct.convert_text_cct_original --checkpoint text_cct2-1_agnews_93.45.pth \
        --preset text_cct_2 --output_dir text-cct-2-agnews
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..utils import check_state_dict
from .configuration_text_cct import TEXT_CCT_PRESETS, TextCCTConfig
from .modeling_cct import sinusoidal_position_table
from .modeling_text_cct import TextCCTForSequenceClassification

# Official name (inside `classifier.blocks.{i}.`) -> name inside `text_cct.encoder.layers.{i}.`.
_LAYER_RENAMES = {
    "pre_norm": "layernorm_before",
    "self_attn.qkv": "attention.qkv",
    "self_attn.proj": "attention.out_proj",
    "norm1": "layernorm_after",
    "linear1": "mlp.fc1",
    "linear2": "mlp.fc2",
}
_LAYER_KEY = re.compile(r"^classifier\.blocks\.(\d+)\.(.+)\.(weight|bias)$")
_DIRECT_RENAMES = {
    "embedder.embeddings.weight": "text_cct.embeddings.word_embeddings.weight",
    "classifier.class_emb": "text_cct.embeddings.class_token",
    "classifier.attention_pool.weight": "text_cct.pooler.attention_pool.weight",
    "classifier.attention_pool.bias": "text_cct.pooler.attention_pool.bias",
    "classifier.norm.weight": "text_cct.layernorm.weight",
    "classifier.norm.bias": "text_cct.layernorm.bias",
    "classifier.fc.weight": "classifier.weight",
    "classifier.fc.bias": "classifier.bias",
}
_OFFICIAL_CONV = "tokenizer.conv_layers.0.weight"
_OFFICIAL_POSITIONS = "classifier.positional_emb"


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], config: TextCCTConfig) -> dict[str, torch.Tensor]:
    """Maps an official text-model state dict onto `TextCCTForSequenceClassification(config)` names and shapes.

    - The tokenizer's `Conv2d(1, hidden, (k, word_dim))` weight `(hidden, 1, k, word_dim)` becomes the
      `Conv1d(word_dim, hidden, k)` weight `(hidden, word_dim, k)`.
    - The official position tables carry one extra leading "padding" row (which is why the official sine/learnable
      text models cannot run): it is dropped from a learnable table; a sine table is not stored here (it is a fixed
      buffer rebuilt from the config).

    Raises `ValueError` naming the offending key when a key is unknown or a shape does not fit `config`.
    """
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key == _OFFICIAL_CONV:
            converted["text_cct.embeddings.tokenizer.convolution.weight"] = value.squeeze(1).transpose(1, 2)
        elif key == _OFFICIAL_POSITIONS:
            if config.position_embedding_type == "learnable":
                converted["text_cct.embeddings.position_embeddings"] = value[:, 1:]
        elif key in _DIRECT_RENAMES:
            converted[_DIRECT_RENAMES[key]] = value
        elif (match := _LAYER_KEY.match(key)) and match.group(2) in _LAYER_RENAMES:
            layer_index, name, kind = match.groups()
            converted[f"text_cct.encoder.layers.{layer_index}.{_LAYER_RENAMES[name]}.{kind}"] = value
        else:
            raise ValueError(f"`state_dict` has a key that is not part of an official text model: {key!r}.")
    _check_shapes(converted, config)
    return {key: value.contiguous() for key, value in converted.items()}


def _check_shapes(converted: Mapping[str, torch.Tensor], config: TextCCTConfig) -> None:
    with torch.device("meta"):
        expected = TextCCTForSequenceClassification(config).state_dict()
    for key, value in converted.items():
        if key not in expected:
            raise ValueError(f"Converted key {key!r} does not exist in a model of this config (check the preset).")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"Converted {key!r} has shape {tuple(value.shape)}, but the config expects "
                f"{tuple(expected[key].shape)} (check the preset and overrides)."
            )


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor], preset: str, **overrides) -> TextCCTConfig:
    """The `TextCCTConfig` of an official checkpoint: the encoder size comes from the official builder name `preset`
    (e.g. `"text_cct_2"`), vocabulary size, word-vector width, kernel / patch size and class count from the tensor
    shapes; the padding id is the official 1. `overrides` win (e.g. `position_embedding_type`, `id2label`)."""
    if "embedder.embeddings.weight" not in state_dict or "classifier.fc.weight" not in state_dict:
        raise ValueError(
            "`state_dict` is not an official text model: it lacks 'embedder.embeddings.weight' or "
            "'classifier.fc.weight'."
        )
    vocab_size, word_embedding_dim = state_dict["embedder.embeddings.weight"].shape
    arguments = {
        "vocab_size": vocab_size,
        "word_embedding_dim": word_embedding_dim,
        "pad_token_id": 1,
        "num_labels": state_dict["classifier.fc.weight"].shape[0],
        "position_embedding_type": _stored_position_embedding_type(state_dict.get(_OFFICIAL_POSITIONS)),
    }
    if _OFFICIAL_CONV in state_dict:
        kernel_size = state_dict[_OFFICIAL_CONV].shape[2]
        tokenizer_type = TEXT_CCT_PRESETS.get(preset, {}).get("tokenizer_type")
        arguments["patch_size" if tokenizer_type == "patch" else "conv_kernel_size"] = kernel_size
    if "id2label" in overrides:
        arguments.pop("num_labels")
    arguments.update(overrides)
    return TextCCTConfig.from_preset(preset, **arguments)


def _stored_position_embedding_type(table: torch.Tensor | None) -> str:
    """`"none"` without a table, `"sine"` when it is the official sine table (a zero row, then the sines), else
    `"learnable"`."""
    if table is None:
        return "none"
    sine = sinusoidal_position_table(table.shape[1] - 1, table.shape[2])
    official_sine = torch.cat([torch.zeros(1, table.shape[2]), sine]).unsqueeze(0)
    return "sine" if torch.allclose(table.float(), official_sine, atol=1e-5) else "learnable"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="Official `.pth` state dict.")
    parser.add_argument("--preset", required=True, choices=sorted(TEXT_CCT_PRESETS), help="Official builder name.")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument(
        "--position_embedding_type",
        choices=("sine", "learnable", "none"),
        default=None,
        help="PE of the checkpoint; default: 'none' without a stored table, 'sine' for the official sine table, "
        "else 'learnable'.",
    )
    parser.add_argument("--max_position_embeddings", type=int, default=None, help="The official `seq_len`.")
    parser.add_argument("--labels", nargs="+", default=None, help="Class names, in class-index order.")
    args = parser.parse_args(argv)

    if not args.checkpoint.is_file():
        raise FileNotFoundError(f"--checkpoint: {str(args.checkpoint)!r} does not exist.")
    state_dict = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise TypeError(f"--checkpoint: expected a state dict, got a {type(state_dict).__name__}.")
    state_dict = state_dict.get("state_dict", state_dict)
    overrides = {
        name: value
        for name, value in (
            ("position_embedding_type", args.position_embedding_type),
            ("max_position_embeddings", args.max_position_embeddings),
        )
        if value is not None
    }
    if args.labels is not None:
        overrides["id2label"] = dict(enumerate(args.labels))
    config = config_from_state_dict(state_dict, args.preset, **overrides)
    model = TextCCTForSequenceClassification(config)
    converted = convert_state_dict(state_dict, config)
    check_state_dict(converted, model, f"the converted --checkpoint {str(args.checkpoint)!r}")
    model.load_state_dict(converted)
    model.save_pretrained(args.output_dir)
    print(f"Saved {args.preset} ({model.num_parameters():,} parameters) to {args.output_dir}")
    return args.output_dir


if __name__ == "__main__":
    main()
