"""Hinge GAN losses and the generator-weight ramp of ViTok stage 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))))`` (taming-transformers' hinge loss)."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``-mean(D(G(z)))``: the generator's side of the hinge GAN."""
    return -fake_logits.mean()


def adversarial_weight(step: int, max_weight: float, start_step: int, ramp_steps: int) -> float:
    """Weight of the generator GAN term at optimizer step ``step``.

    ViTok's code keeps it at 0 for ``start_step`` steps (5000 * 256 / batch), then raises it linearly to
    ``max_weight`` (0.05) over ``ramp_steps`` steps (50000 * 256 / batch).
    """
    if step < start_step:
        return 0.0
    if ramp_steps <= 0:
        return max_weight
    return max_weight * min(1.0, (step - start_step) / ramp_steps)
