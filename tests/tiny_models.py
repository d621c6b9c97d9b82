"""Tiny models shared by the tests and the multi-process workers (seeded, so every call builds the same weights).

Tests take them through the fixtures in ``conftest.py``; the workers in ``distributed_workers/`` import this module
(``tests`` is on pytest's path and the workers add it themselves).
"""

from __future__ import annotations

import torch
from diffusers import DiTTransformer2DModel

from hf_compact import (
    AutoencoderViTok,
    CCTConfig,
    CCTForImageClassification,
    DiTTransformer3DModel,
    TextCCTConfig,
    TextCCTForSequenceClassification,
)

TINY_VITOK = dict(
    latent_channels=4,
    patch_size=4,
    encoder_width=16,
    encoder_depth=1,
    encoder_heads=2,
    decoder_width=16,
    decoder_depth=1,
    decoder_heads=2,
    sample_size=16,
)
TINY_CCT = dict(hidden_size=32, intermediate_size=32, num_hidden_layers=1, image_size=16)
TINY_TEXT_CCT = dict(
    vocab_size=50,
    word_embedding_dim=16,
    hidden_size=32,
    intermediate_size=32,
    num_hidden_layers=1,
    max_position_embeddings=16,
)
TINY_DIT_3D = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=1)


def tiny_vitok(seed: int = 0, **overrides) -> AutoencoderViTok:
    """A ViTok-v1 autoencoder for 16x16 images: patch 4, 4 latent channels, width 16."""
    torch.manual_seed(seed)
    return AutoencoderViTok(**{**TINY_VITOK, **overrides}).eval()


def tiny_cct(preset: str = "cct_2_3x2_32", seed: int = 0, **overrides) -> CCTForImageClassification:
    """An official CCT preset shrunk to width 32, one layer, 16 px (override any config field)."""
    torch.manual_seed(seed)
    return CCTForImageClassification(CCTConfig.from_preset(preset, **{**TINY_CCT, **overrides})).eval()


def tiny_text_cct(preset: str = "text_cct_2", seed: int = 0, **overrides) -> TextCCTForSequenceClassification:
    """An official TextCCT preset shrunk to width 32, one layer, a 50-word vocabulary."""
    torch.manual_seed(seed)
    config = TextCCTConfig.from_preset(preset, **{**TINY_TEXT_CCT, **overrides})
    return TextCCTForSequenceClassification(config).eval()


def tiny_dit_2d(num_classes: int = 3, seed: int = 0, **overrides) -> DiTTransformer2DModel:
    """diffusers' DiT on a 4x4 grid of 4-channel latents, patch 1, learned variance (out_channels = 8)."""
    torch.manual_seed(seed)
    config = dict(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        sample_size=4,
        patch_size=1,
        num_embeds_ada_norm=num_classes,
        norm_num_groups=1,
    )
    return DiTTransformer2DModel(**{**config, **overrides}).eval()


def tiny_dit_3d(num_classes: int = 3, seed: int = 0, **overrides) -> DiTTransformer3DModel:
    """The video DiT at width 16, one block."""
    torch.manual_seed(seed)
    return DiTTransformer3DModel(**{**TINY_DIT_3D, "num_embeds_ada_norm": num_classes, **overrides}).eval()
