"""Feed-forward blocks: plain two-layer MLP and gated MLPs (GeGLU / SwiGLU)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}
MLP_TYPES = ("gelu", "geglu", "swiglu", "swiglu_fused")


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class Mlp(nn.Module):
    """``fc2(act(fc1(x)))``.

    Shapes:
        hidden_states: ``(..., dim)`` -> ``(..., out_dim or dim)``.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        out_dim: int | None = None,
        bias: bool = True,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        self.act = _activation(activation)
        self.fc1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.fc2 = nn.Linear(hidden_dim, out_dim or dim, bias=bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class GatedMlp(nn.Module):
    """Gated MLP ``out_proj(act(gate) * value)`` (GeGLU with ``activation="gelu"``, SwiGLU with ``"silu"``).

    Two parameter layouts:

    * ``fused=False`` (ViTok-v1 "T5_MLP"): ``gate_proj`` and ``value_proj`` are separate ``Linear(dim, hidden)``.
    * ``fused=True`` (ViTok-v2): one ``in_proj = Linear(dim, 2 * hidden)`` whose output is
      ``[value | gate]`` (first half value, second half gate).

    Shapes:
        hidden_states: ``(..., dim)`` -> ``(..., out_dim or dim)``.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        out_dim: int | None = None,
        bias: bool = True,
        activation: str = "silu",
        fused: bool = False,
    ) -> None:
        super().__init__()
        self.act = _activation(activation)
        self.fused = fused
        if fused:
            self.in_proj = nn.Linear(dim, 2 * hidden_dim, bias=bias)
        else:
            self.gate_proj = nn.Linear(dim, hidden_dim, bias=bias)
            self.value_proj = nn.Linear(dim, hidden_dim, bias=bias)
        self.out_proj = nn.Linear(hidden_dim, out_dim or dim, bias=bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.fused:
            value, gate = self.in_proj(hidden_states).chunk(2, dim=-1)
        else:
            value, gate = self.value_proj(hidden_states), self.gate_proj(hidden_states)
        return self.out_proj(self.act(gate) * value)


def build_mlp(mlp_type: str, dim: int, hidden_dim: int, bias: bool = True) -> nn.Module:
    """Builds a feed-forward block by name.

    Args:
        mlp_type: ``"gelu"`` (:class:`Mlp`), ``"geglu"`` / ``"swiglu"`` (:class:`GatedMlp` with three linears,
            ViTok-v1 layout) or ``"swiglu_fused"`` (:class:`GatedMlp` with a fused ``[value | gate]`` input
            projection, ViTok-v2 layout).
    """
    if mlp_type == "gelu":
        return Mlp(dim, hidden_dim, bias=bias, activation="gelu")
    if mlp_type == "geglu":
        return GatedMlp(dim, hidden_dim, bias=bias, activation="gelu")
    if mlp_type == "swiglu":
        return GatedMlp(dim, hidden_dim, bias=bias, activation="silu")
    if mlp_type == "swiglu_fused":
        return GatedMlp(dim, hidden_dim, bias=bias, activation="silu", fused=True)
    raise ValueError(f"mlp_type must be one of {MLP_TYPES}, got {mlp_type!r}")
