"""ViT encoder and decoder stacks of :class:`~hf_compact.vitok.AutoencoderViTok`."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import FP32LayerNorm, TransformerBlock, build_norm, rotary_axis_dims, rotary_cos_sin
from .tubelets import TubeletEmbed, TubeletHead

LATENT_TYPES = ("gaussian", "deterministic")


def mlp_hidden_size(width: int, mlp_ratio: float, multiple: int) -> int:
    """``int(width * mlp_ratio)`` rounded to the nearest ``multiple`` (v1: multiple 1 -> 2050 for 768;
    v2: multiple 16 -> 2736 for 1024, 8208 for 3072)."""
    hidden = int(width * mlp_ratio)
    return multiple * ((hidden + multiple // 2) // multiple)


class ViTStack(nn.Module):
    """``depth`` :class:`~hf_compact.layers.TransformerBlock` s sharing one RoPE table, then an optional final norm.

    Shapes:
        hidden_states: ``(B, N, width)`` tokens of a ``grid_size = (t, h, w)`` grid -> ``(B, N, width)``.
    """

    def __init__(self, width: int, depth: int, num_heads: int, final_norm: bool, config) -> None:
        super().__init__()
        self.rope_type, self.rope_theta = config.rope_type, config.rope_theta
        self.head_dim = width // num_heads
        rotary_axis_dims(self.rope_type, self.head_dim)  # validates rope_type against the head dim
        self.blocks = nn.ModuleList(
            TransformerBlock(
                width,
                num_heads,
                mlp_hidden_size(width, config.mlp_ratio, config.mlp_hidden_multiple),
                block_type=config.block_type,
                norm_type=config.norm_type,
                norm_eps=config.norm_eps,
                mlp_type=config.mlp_type,
                mlp_bias=config.mlp_bias,
                qkv_bias=config.qkv_bias,
                attn_out_bias=config.attn_out_bias,
                qk_norm=config.qk_norm,
                layer_scale_init=config.layer_scale_init,
            )
            for _ in range(depth)
        )
        self.norm = build_norm(config.norm_type, width, eps=config.norm_eps) if final_norm else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, grid_size: tuple[int, int, int]) -> torch.Tensor:
        rotary = rotary_cos_sin(
            self.rope_type,
            grid_size,
            self.head_dim,
            self.rope_theta,
            device=hidden_states.device,
            dtype=hidden_states.dtype,
        )
        for block in self.blocks:
            hidden_states = block(hidden_states, rotary)
        return self.norm(hidden_states)


class ViTokEncoder(nn.Module):
    """Pixels ``(B, C, T, H, W)`` -> latent parameters ``(B, N, 2c)`` (gaussian: mean | logvar) or
    ``(B, N, c)`` (deterministic: ``to_latent`` followed by a non-affine float32 LayerNorm, ViTok-v2)."""

    def __init__(self, config) -> None:
        super().__init__()
        if config.latent_type not in LATENT_TYPES:
            raise ValueError(f"latent_type must be one of {LATENT_TYPES}, got {config.latent_type!r}")
        width = config.encoder_width
        self.patch_embed = TubeletEmbed(
            config.in_channels, width, config.tubelet_size, config.patch_size, config.patch_embed_type
        )
        self.transformer = ViTStack(width, config.encoder_depth, config.encoder_heads, config.final_norm, config)
        deterministic = config.latent_type == "deterministic"
        self.to_latent = nn.Linear(width, config.latent_channels * (1 if deterministic else 2))
        self.latent_norm = (
            FP32LayerNorm(config.latent_channels, eps=1e-6, elementwise_affine=False)
            if deterministic
            else nn.Identity()
        )

    def forward(self, video: torch.Tensor, grid_size: tuple[int, int, int]) -> torch.Tensor:
        hidden_states = self.transformer(self.patch_embed(video), grid_size)
        return self.latent_norm(self.to_latent(hidden_states))


class ViTokDecoder(nn.Module):
    """Latent tokens ``(B, N, c)`` on a ``(t, h, w)`` grid -> pixels ``(B, C, t*q, h*p, w*p)`` (no clamp)."""

    def __init__(self, config) -> None:
        super().__init__()
        width = config.decoder_width
        self.latent_proj = nn.Linear(config.latent_channels, width)
        self.transformer = ViTStack(width, config.decoder_depth, config.decoder_heads, config.final_norm, config)
        self.to_pixels = TubeletHead(
            width, config.in_channels, config.tubelet_size, config.patch_size, config.patch_embed_type
        )

    def forward(self, latent_tokens: torch.Tensor, grid_size: tuple[int, int, int]) -> torch.Tensor:
        hidden_states = self.transformer(self.latent_proj(latent_tokens), grid_size)
        return self.to_pixels(hidden_states, grid_size)
