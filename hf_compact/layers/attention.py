"""Multi-head self-attention with fused qkv, optional qk-norm and rotary embeddings.

The attention itself goes through diffusers' attention dispatcher (``dispatch_attention_fn``), so that
``ModelMixin.set_attention_backend`` switches the kernel (``"native"`` SDPA by default, ``"_native_math"``,
``"flex"``, ``"flash"``, ``"sage"``, ...) exactly as for diffusers' own transformers.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import AttentionModuleMixin
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch import nn

from .normalization import build_norm
from .rotary import apply_rotary_embedding


class SelfAttnProcessor:
    """Computes :class:`Attention` with the backend in ``_attention_backend`` (``None``: diffusers' active backend,
    PyTorch SDPA unless ``DIFFUSERS_ATTN_BACKEND`` or ``attention_backend(...)`` says otherwise)."""

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch_size, num_tokens, dim = hidden_states.shape
        qkv = attn.qkv(hidden_states).view(batch_size, num_tokens, 3, attn.num_heads, attn.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        query, key = attn.norm_q(query), attn.norm_k(key)
        if rotary is not None:
            cos, sin = rotary
            query = apply_rotary_embedding(query, cos, sin)
            key = apply_rotary_embedding(key, cos, sin)
        if attention_mask is not None and attention_mask.ndim < 4:
            # Broadcast semantics kept explicit: the dispatcher reads a 2-D mask as (B, N) key padding.
            attention_mask = attention_mask.reshape((1,) * (4 - attention_mask.ndim) + attention_mask.shape)
        # The dispatcher takes (B, N, heads, head_dim) views; the native backend transposes them back, so SDPA
        # receives the very tensors a direct call would.
        attended = dispatch_attention_fn(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            attn_mask=attention_mask,
            backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )  # (B, N, heads, head_dim)
        return attn.proj(attended.reshape(batch_size, num_tokens, dim))


class Attention(nn.Module, AttentionModuleMixin):
    """Non-causal multi-head self-attention.

    ``qkv`` is one ``Linear(dim, 3 * dim)`` whose output is laid out ``[q | k | v]``, head ``j`` occupying
    channels ``j * head_dim .. (j + 1) * head_dim - 1`` of each part. Optional qk-norm (over ``head_dim``,
    weights shared across heads) is applied before the rotary embedding; the rotary embedding is applied to
    q and k only. Scale is ``1 / sqrt(head_dim)``. The computation lives in ``processor``
    (:class:`SelfAttnProcessor`), as in diffusers' attention modules.

    Args:
        dim: model width.
        num_heads: number of heads; must divide ``dim``.
        qkv_bias: bias in the qkv projection.
        out_bias: bias in the output projection.
        qk_norm: ``None``, ``"rms"`` or ``"layer"``.
        qk_norm_eps: epsilon of the qk-norm.
    """

    _default_processor_cls = SelfAttnProcessor
    _available_processors = [SelfAttnProcessor]
    _supports_qkv_fusion = False  # q, k and v are one projection already

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
        self.set_processor(self._default_processor_cls())

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
        return self.processor(self, hidden_states, rotary, attention_mask)
