"""Normalisation layers shared by the models of this package."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

NORM_TYPES = ("layer", "rms")


class RMSNorm(nn.Module):
    """Root-mean-square normalisation over the last dimension, computed in float32.

    ``y = x / sqrt(mean(x**2) + eps) * weight``. Input and weight are upcast to float32 and the result is
    cast back to the input dtype (ViTok-v2 / Llama numerics). There is no bias.

    Args:
        dim: size of the normalised (last) dimension.
        eps: added to the mean square before the square root.
        elementwise_affine: learn a per-channel ``weight`` (initialised to ones).

    Shapes:
        hidden_states: ``(..., dim)`` -> ``(..., dim)``, same dtype.
    """

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states_fp32 = hidden_states.float()
        normed = hidden_states_fp32 * torch.rsqrt(hidden_states_fp32.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            normed = normed * self.weight.float()
        return normed.to(hidden_states.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class FP32LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` that computes in float32 and casts back to the input dtype.

    Shapes:
        hidden_states: ``(..., normalized_shape)`` -> same shape and dtype.
    """

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(
            hidden_states.float(),
            self.normalized_shape,
            self.weight.float() if self.weight is not None else None,
            self.bias.float() if self.bias is not None else None,
            self.eps,
        ).to(hidden_states.dtype)


def build_norm(norm_type: str, dim: int, eps: float = 1e-6, elementwise_affine: bool = True) -> nn.Module:
    """Builds a normalisation layer over the last dimension.

    Args:
        norm_type: ``"layer"`` (``nn.LayerNorm``, weight and bias when ``elementwise_affine``) or ``"rms"``
            (:class:`RMSNorm`, weight only, float32 compute).
        dim: size of the normalised dimension.
        eps: numerical epsilon.
        elementwise_affine: whether the norm has learnable parameters.
    """
    if norm_type == "layer":
        return nn.LayerNorm(dim, eps=eps, elementwise_affine=elementwise_affine)
    if norm_type == "rms":
        return RMSNorm(dim, eps=eps, elementwise_affine=elementwise_affine)
    raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {norm_type!r}")
