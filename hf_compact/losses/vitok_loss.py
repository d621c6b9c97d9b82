"""ViTok's autoencoder objective: L = w_mse*MSE + w_l1*Charbonnier + w_ssim*(1-SSIM) + beta*KL + eta*LPIPS.

The GAN term of stage 2 is added by the training loop (it needs the discriminator and the ramp); see
:mod:`hf_compact.losses.adversarial`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

from .kl import gaussian_kl_loss
from .lpips import LPIPS
from .reconstruction import charbonnier_loss, ssim_loss


@dataclass
class ViTokLossWeights:
    """Weights of each term; the defaults are ViTok stage 1 for images (paper eq. 1, appendix A.2)."""

    mse: float = 1.0
    charbonnier: float = 0.0
    ssim: float = 0.0
    kl: float = 1e-3
    lpips: float = 1.0


class ViTokLoss(nn.Module):
    """Weighted sum of the reconstruction, KL and perceptual terms.

    Args:
        weights: weight of each term; a term with weight 0 is not computed.
        lpips: the perceptual network; required when ``weights.lpips > 0``.
    """

    def __init__(self, weights: ViTokLossWeights, lpips: LPIPS | None = None):
        super().__init__()
        if weights.lpips > 0 and lpips is None:
            raise ValueError(f"lpips: expected an LPIPS network since weights.lpips = {weights.lpips}, got None.")
        self.weights = weights
        self.lpips = lpips

    def forward(
        self,
        reconstruction: torch.Tensor,
        target: torch.Tensor,
        posterior: DiagonalGaussianDistribution | None,
    ) -> dict[str, torch.Tensor]:
        """Loss terms for one batch.

        Args:
            reconstruction: decoder output, (B, 3, H, W) or (B, 3, T, H, W), nominally in [-1, 1].
            target: the input pixels, same shape.
            posterior: the encoder's ``latent_dist`` (``None`` skips the KL term, e.g. with a frozen encoder).

        Returns:
            ``{"loss": weighted total, "<term>": unweighted value}`` for every term with a non-zero weight.
        """
        if reconstruction.shape != target.shape:
            raise ValueError(
                f"reconstruction: expected the target's shape {tuple(target.shape)}, "
                f"got {tuple(reconstruction.shape)}."
            )
        reconstruction, target = reconstruction.float(), target.float()
        terms: dict[str, torch.Tensor] = {}
        if self.weights.mse:
            terms["mse"] = F.mse_loss(reconstruction, target)
        if self.weights.charbonnier:
            terms["charbonnier"] = charbonnier_loss(reconstruction, target)
        if self.weights.ssim:
            terms["ssim"] = ssim_loss(reconstruction, target)
        if self.weights.kl and posterior is not None:
            terms["kl"] = gaussian_kl_loss(posterior)
        if self.weights.lpips:
            terms["lpips"] = self.lpips(reconstruction, target).mean()
        total = sum(getattr(self.weights, name) * value for name, value in terms.items())
        return {"loss": total, **terms}
