"""LayerScale: a learnable per-channel gain on a residual branch (CaiT)."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiplies the last dimension by a learnable ``gamma`` initialised to ``init_value``.

    Shapes:
        hidden_states: ``(..., dim)`` -> ``(..., dim)``.
    """

    def __init__(self, dim: int, init_value: float = 1e-4) -> None:
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states * self.gamma
