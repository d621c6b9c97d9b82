"""Optimizer parameter groups shared by the training recipes."""

from __future__ import annotations

import torch
from torch import nn


def weight_decay_parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters in two groups: those of two or more dimensions with ``weight_decay``, the 1-D ones
    (biases, normalisation weights) without, as timm's optimizer factory does."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw_without_decay_on_1d(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over :func:`weight_decay_parameter_groups` of ``model``."""
    groups = weight_decay_parameter_groups(model, weight_decay)
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps)


__all__ = ["adamw_without_decay_on_1d", "weight_decay_parameter_groups"]
