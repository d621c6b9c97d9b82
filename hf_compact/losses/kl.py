"""KL divergence of the ViTok posterior to N(0, I), reduced as ViTok does (a mean, not diffusers' sum)."""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution


def gaussian_kl_loss(posterior: DiagonalGaussianDistribution) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) averaged over every latent element and the batch (a scalar).

    ViTok (v1 code) computes ``0.5 * mean(mu^2 + var - 1 - logvar)`` over the latent tokens and channels,
    then averages over the batch, and trains with ``beta = 1e-3`` on that mean. diffusers'
    ``DiagonalGaussianDistribution.kl()`` instead *sums* over dims 1-3, which would scale the term by the
    latent size (4096 for S-B/16 at 256p) and make beta meaningless across resolutions; it also ignores the
    time axis of video latents. The mean here works for image (B, c, h, w) and video (B, c, t, h, w) latents.

    Args:
        posterior: the ``latent_dist`` of ``AutoencoderViTok.encode``.
    """
    if posterior.deterministic:
        return posterior.mean.new_zeros(())
    kl_per_element = posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar
    return 0.5 * kl_per_element.float().mean()
