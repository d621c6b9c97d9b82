"""ViTok autoencoder (v1 paper model and ViTok-v2 published weights) for diffusers."""

from .autoencoder_vitok import AutoencoderViTok
from .convert_vitok_original import convert_vitok_original
from .convert_vitok_v2 import load_vitok_v2
from .latent_statistics import compute_latent_std
from .presets import VITOK_PRESETS, v2_config_from_variant

__all__ = [
    "VITOK_PRESETS",
    "AutoencoderViTok",
    "compute_latent_std",
    "convert_vitok_original",
    "load_vitok_v2",
    "v2_config_from_variant",
]
