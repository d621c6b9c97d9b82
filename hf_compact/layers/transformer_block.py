"""Configurable pre-norm ViT block (sequential or parallel attention/MLP)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention
from .layer_scale import LayerScale
from .mlp import build_mlp
from .normalization import build_norm

BLOCK_TYPES = ("sequential", "parallel")


def _maybe_layer_scale(dim: int, init_value: float | None) -> nn.Module:
    return LayerScale(dim, init_value) if init_value is not None else nn.Identity()


class TransformerBlock(nn.Module):
    """Pre-norm transformer block.

    * ``block_type="sequential"`` (ViT, ViTok-v1): ``x = x + attn(norm1(x)); x = x + mlp(norm2(x))``.
    * ``block_type="parallel"`` (ViTok-v2): one norm feeds both branches,
      ``x = x + layer_scale(attn(norm1(x)) + mlp(norm1(x)))``.

    With ``layer_scale_init`` set, a :class:`LayerScale` multiplies each residual branch (sequential: one per
    branch, ``layer_scale1``/``layer_scale2``; parallel: one on the sum, ``layer_scale``).

    Gradient checkpointing follows diffusers: ``ModelMixin.enable_gradient_checkpointing()`` sets
    ``gradient_checkpointing`` and ``_gradient_checkpointing_func`` on every module that has the attribute.

    Args:
        dim: model width.
        num_heads: attention heads.
        mlp_hidden_dim: hidden size of the feed-forward block.
        block_type: ``"sequential"`` or ``"parallel"``.
        norm_type: ``"layer"`` or ``"rms"``.
        norm_eps: epsilon of the block norms.
        mlp_type: see :func:`~hf_compact.layers.mlp.build_mlp`.
        mlp_bias: biases in the MLP linears.
        qkv_bias, attn_out_bias, qk_norm: see :class:`~hf_compact.layers.attention.Attention`.
        layer_scale_init: initial LayerScale value, or ``None`` for no LayerScale.
    """

    _gradient_checkpointing_func = staticmethod(partial(checkpoint, use_reentrant=False))

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden_dim: int,
        block_type: str = "sequential",
        norm_type: str = "layer",
        norm_eps: float = 1e-5,
        mlp_type: str = "geglu",
        mlp_bias: bool = True,
        qkv_bias: bool = False,
        attn_out_bias: bool = True,
        qk_norm: str | None = None,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {block_type!r}")
        self.block_type = block_type
        self.gradient_checkpointing = False
        self.norm1 = build_norm(norm_type, dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, out_bias=attn_out_bias, qk_norm=qk_norm)
        self.mlp = build_mlp(mlp_type, dim, mlp_hidden_dim, bias=mlp_bias)
        if block_type == "sequential":
            self.norm2 = build_norm(norm_type, dim, eps=norm_eps)
            self.layer_scale1 = _maybe_layer_scale(dim, layer_scale_init)
            self.layer_scale2 = _maybe_layer_scale(dim, layer_scale_init)
        else:
            self.layer_scale = _maybe_layer_scale(dim, layer_scale_init)

    def forward(
        self,
        hidden_states: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: ``(B, N, dim)``.
            rotary: ``(cos, sin)`` tables, each ``(N, head_dim // 2)``, or ``None``.
            attention_mask: see :class:`~hf_compact.layers.attention.Attention`.

        Returns:
            ``(B, N, dim)``.
        """
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(self._residual_forward, hidden_states, rotary, attention_mask)
        return self._residual_forward(hidden_states, rotary, attention_mask)

    def _residual_forward(
        self,
        hidden_states: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.block_type == "parallel":
            normed = self.norm1(hidden_states)
            branches = self.attn(normed, rotary, attention_mask) + self.mlp(normed)
            return hidden_states + self.layer_scale(branches)
        hidden_states = hidden_states + self.layer_scale1(self.attn(self.norm1(hidden_states), rotary, attention_mask))
        return hidden_states + self.layer_scale2(self.mlp(self.norm2(hidden_states)))
