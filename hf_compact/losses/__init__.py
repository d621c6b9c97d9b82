"""Training losses: ViTok's (reconstruction, KL, LPIPS, a StyleGAN-style discriminator with hinge loss) and the DiT's
(DDPM or flow matching)."""

from .adversarial import adversarial_weight, discriminator_hinge_loss, generator_hinge_loss
from .diffusion import (
    ddpm_loss,
    flow_matching_loss,
    resolution_shift,
    sample_flow_sigmas,
    shift_sigmas,
)
from .discriminator import StyleGANDiscriminator
from .kl import gaussian_kl_loss
from .lpips import LPIPS
from .reconstruction import charbonnier_loss, ssim_loss
from .vgg import VGG16Features
from .vitok_loss import ViTokLoss, ViTokLossWeights

__all__ = [
    "LPIPS",
    "StyleGANDiscriminator",
    "VGG16Features",
    "ViTokLoss",
    "ViTokLossWeights",
    "adversarial_weight",
    "charbonnier_loss",
    "ddpm_loss",
    "discriminator_hinge_loss",
    "flow_matching_loss",
    "gaussian_kl_loss",
    "generator_hinge_loss",
    "resolution_shift",
    "sample_flow_sigmas",
    "shift_sigmas",
    "ssim_loss",
]
