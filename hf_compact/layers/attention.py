"""Multi-head self-attention with fused qkv, optional qk-norm and rotary embeddings (PyTorch SDPA)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .normalization import build_norm
from .rotary import apply_rotary_embedding


class Attention(nn.Module):
    """Non-causal multi-head self-attention.

    ``qkv`` is one ``Linear(dim, 3 * dim)`` whose output is laid out ``[q | k | v]``, head ``j`` occupying
    channels ``j * head_dim .. (j + 1) * head_dim - 1`` of each part. Optional qk-norm (over ``head_dim``,
    weights shared across heads) is applied before the rotary embedding; the rotary embedding is applied to
    q and k only. Scale is ``1 / sqrt(head_dim)``.

    Args:
        dim: model width.
        num_heads: number of heads; must divide ``dim``.
        qkv_bias: bias in the qkv projection.
        out_bias: bias in the output projection.
        qk_norm: ``None``, ``"rms"`` or ``"layer"``.
        qk_norm_eps: epsilon of the qk-norm.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = False,
        out_bias: bool = True,
        qk_norm: str | None = None,
        qk_norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.norm_q = build_norm(qk_norm, self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.norm_k = build_norm(qk_norm, self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=out_bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: ``(B, N, dim)`` tokens.
            rotary: ``(cos, sin)``, each ``(N, head_dim // 2)``, or ``None`` for no rotary embedding.
            attention_mask: boolean (``True`` = may attend) or additive float mask broadcastable to
                ``(B, heads, N, N)``, or ``None`` for full attention.

        Returns:
            ``(B, N, dim)``.
        """
        batch_size, num_tokens, dim = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch_size, num_tokens, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        query, key = self.norm_q(query), self.norm_k(key)
        if rotary is not None:
            cos, sin = rotary
            query = apply_rotary_embedding(query, cos, sin)
            key = apply_rotary_embedding(key, cos, sin)
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, is_causal=False)
        return self.proj(attended.transpose(1, 2).reshape(batch_size, num_tokens, dim))
