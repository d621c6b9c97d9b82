"""Named configurations of :class:`~hf_compact.vitok.AutoencoderViTok`.

* ViTok-v1 paper configs (``S-B/16``, ``S-L/16``, ``S-B/4x8``, ``S-B/8x8``, ``S-B/4x16``): independent encoder
  and decoder sizes, which is what reproduces the paper's parameter counts (S-B/16 128.86M, S-L/16 426.84M).
* ViTok-v2 published weights (``v2-350M-f16x16`` ... ``v2-5B-f32x256``), built from the official variant strings
  (``Ld4-Ld24/1x16x16``) with :func:`v2_config_from_variant`.

:func:`vitok_paper_name` names a configuration the papers' way (``AutoencoderViTok.paper_name`` calls it).
"""

from __future__ import annotations

import re
from typing import Any

# name: (width, depth, heads)
V1_SIZES = {"S": (768, 6, 12), "B": (768, 12, 12), "L": (1152, 24, 16)}
V2_SIZES = {
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "G": (1728, 32, 24),
    "T": (3072, 40, 24),
    "E": (4096, 48, 32),
}

# Switches that turn the ViTok-v1 architecture into ViTok-v2 (docs: vitok-v2.md §3-§6).
V2_ARCHITECTURE = {
    "mlp_ratio": 2.67,
    "mlp_hidden_multiple": 16,
    "mlp_type": "swiglu_fused",
    "mlp_bias": False,
    "block_type": "parallel",
    "norm_type": "rms",
    "norm_eps": 1e-6,
    "layer_scale_init": 1e-4,
    "qkv_bias": False,
    "attn_out_bias": False,
    "qk_norm": "rms",
    "rope_type": "2d",
    "rope_theta": 10000.0,
    "patch_embed_type": "linear",
    "final_norm": False,
    "latent_type": "deterministic",
}

V2_VARIANTS = {
    "v2-350M-f16x16": "Ld4-Ld24/1x16x16",
    "v2-350M-f16x32": "Ld4-Ld24/1x16x32",
    "v2-350M-f16x64": "Ld4-Ld24/1x16x64",
    "v2-5B-f16x16": "Td4-T/1x16x16",
    "v2-5B-f16x32": "Td4-T/1x16x32",
    "v2-5B-f16x64": "Td4-T/1x16x64",
    "v2-5B-f32x64": "Td4-T/1x32x64",
    "v2-5B-f32x128": "Td4-T/1x32x128",
    "v2-5B-f32x256": "Td4-T/1x32x256",
}

_V2_PART = re.compile(r"^(?P<base>[BLGTE])(?P<mods>(?:[dwhm][0-9.]+)*)$")
_V2_MODIFIER = re.compile(r"([dwhm])([0-9.]+)")


def _v1_preset(encoder: str, decoder: str, tubelet_size: int, patch_size: int, latent_channels: int = 16):
    (encoder_width, encoder_depth, encoder_heads) = V1_SIZES[encoder]
    (decoder_width, decoder_depth, decoder_heads) = V1_SIZES[decoder]
    return {
        "latent_channels": latent_channels,
        "patch_size": patch_size,
        "tubelet_size": tubelet_size,
        "encoder_width": encoder_width,
        "encoder_depth": encoder_depth,
        "encoder_heads": encoder_heads,
        "decoder_width": decoder_width,
        "decoder_depth": decoder_depth,
        "decoder_heads": decoder_heads,
    }


def _parse_v2_part(part: str, variant: str) -> tuple[int, int, int, float]:
    match = _V2_PART.match(part)
    if match is None:
        raise ValueError(
            f"variant {variant!r}: cannot parse {part!r}; expected a size letter from {tuple(V2_SIZES)} followed by "
            "optional d<depth>, w<width>, h<heads>, m<mlp factor> modifiers"
        )
    width, depth, heads = V2_SIZES[match["base"]]
    mlp_ratio = 2.67
    for key, value in _V2_MODIFIER.findall(match["mods"]):
        if key == "m":
            mlp_ratio = float(value)
        elif key == "d":
            depth = int(value)
        elif key == "w":
            width = int(value)
        else:
            heads = int(value)
    return width, depth, heads, mlp_ratio


def v2_config_from_variant(variant: str) -> dict[str, Any]:
    """Config of :class:`AutoencoderViTok` for an official ViTok-v2 variant string.

    Form ``{ENC}-{DEC}/{t}x{p}x{c}`` (or ``.../{p}x{c}``); ``ENC``/``DEC`` are a size letter with optional
    ``d``/``w``/``h``/``m`` modifiers, e.g. ``"Ld4-Ld24/1x16x16"`` or ``"Bd2w128h2-Bd3w128h2/1x8x4"``.
    A missing ``-DEC`` means the decoder equals the encoder.
    """
    if not isinstance(variant, str) or variant.count("/") != 1:
        raise ValueError(f"variant must look like 'Ld4-Ld24/1x16x16', got {variant!r}")
    sizes, strides = variant.split("/")
    encoder_part, _, decoder_part = sizes.partition("-")
    encoder = _parse_v2_part(encoder_part, variant)
    decoder = _parse_v2_part(decoder_part or encoder_part, variant)
    try:
        numbers = [int(n) for n in strides.split("x")]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3):
        raise ValueError(f"variant {variant!r}: expected '<t>x<p>x<c>' or '<p>x<c>' after '/', got {strides!r}")
    patch_size, latent_channels = numbers[-2:]
    if encoder[3] != decoder[3]:
        raise ValueError(f"variant {variant!r}: encoder and decoder MLP factors must match")
    return {
        **V2_ARCHITECTURE,
        "mlp_ratio": encoder[3],
        "latent_channels": latent_channels,
        "patch_size": patch_size,
        "tubelet_size": 1,
        "encoder_width": encoder[0],
        "encoder_depth": encoder[1],
        "encoder_heads": encoder[2],
        "decoder_width": decoder[0],
        "decoder_depth": decoder[1],
        "decoder_heads": decoder[2],
    }


VITOK_PRESETS: dict[str, dict[str, Any]] = {
    "S-B/16": _v1_preset("S", "B", 1, 16),
    "S-L/16": _v1_preset("S", "L", 1, 16),
    "S-B/4x8": _v1_preset("S", "B", 4, 8),
    "S-B/8x8": _v1_preset("S", "B", 8, 8),
    "S-B/4x16": _v1_preset("S", "B", 4, 16),
    **{name: v2_config_from_variant(variant) for name, variant in V2_VARIANTS.items()},
}


def vitok_paper_name(config) -> str:
    """The papers' name of an :class:`AutoencoderViTok` config: ``"ViTok S-B/16"`` or ``"ViTok S-B/4x8"`` (tubelet 4,
    patch 8) when the encoder and decoder sizes are ViTok-v1's, ``"ViTok-v2 f16x16"`` (patch 16, 16 latent channels,
    as the published weights are named) for the v2 architecture, else ``"ViTok (patch 4)"`` /
    ``"ViTok (patch 4, tubelet 2)"``."""
    if config.block_type == "parallel":
        return f"ViTok-v2 f{config.patch_size}x{config.latent_channels}"
    grid = f"{config.tubelet_size}x{config.patch_size}" if config.tubelet_size > 1 else str(config.patch_size)
    letters = {size: letter for letter, size in V1_SIZES.items()}
    encoder = letters.get((config.encoder_width, config.encoder_depth, config.encoder_heads))
    decoder = letters.get((config.decoder_width, config.decoder_depth, config.decoder_heads))
    if encoder and decoder:
        return f"ViTok {encoder}-{decoder}/{grid}"
    tubelet = f", tubelet {config.tubelet_size}" if config.tubelet_size > 1 else ""
    return f"ViTok (patch {config.patch_size}{tubelet})"
