"""Training losses for ViTok: reconstruction, KL, LPIPS and a StyleGAN-style discriminator with hinge loss."""

from .adversarial import adversarial_weight, discriminator_hinge_loss, generator_hinge_loss
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
    "discriminator_hinge_loss",
    "gaussian_kl_loss",
    "generator_hinge_loss",
    "ssim_loss",
]
