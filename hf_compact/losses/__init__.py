"""Training losses for ViTok: reconstruction, KL, LPIPS and a StyleGAN-style discriminator with hinge loss."""

from .adversarial import adversarial_weight, discriminator_hinge_loss, generator_hinge_loss
from .discriminator import StyleGANDiscriminator
from .frames import fold_frames_into_batch
from .kl import gaussian_kl_loss
from .lpips import LPIPS
from .reconstruction import charbonnier_loss, ssim_loss
from .vgg import VGG16Features
from .vitok_loss import ViTokLoss, ViTokLossWeights
from .weight_files import load_state_dict_file, resolve_weight_file

__all__ = [
    "LPIPS",
    "StyleGANDiscriminator",
    "VGG16Features",
    "ViTokLoss",
    "ViTokLossWeights",
    "adversarial_weight",
    "charbonnier_loss",
    "discriminator_hinge_loss",
    "fold_frames_into_batch",
    "gaussian_kl_loss",
    "generator_hinge_loss",
    "load_state_dict_file",
    "resolve_weight_file",
    "ssim_loss",
]
