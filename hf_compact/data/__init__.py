"""Datasets, transforms and latent caching used by the training scripts."""

from .classification_transforms import ClassificationTrainAugmentation, RandAugment
from .digits import DIGIT_NAMES, load_digits_dataset
from .images import read_image
from .latent_cache import LatentCacheDataset, build_latent_cache
from .mixup import MixupCutmix, smooth_one_hot
from .moving_digits import load_moving_digits_dataset, make_moving_image_videos
from .reconstruction_data import ImageReconstructionDataset, ImageReconstructionTransform, VideoClipDataset

__all__ = [
    "ClassificationTrainAugmentation",
    "DIGIT_NAMES",
    "ImageReconstructionDataset",
    "ImageReconstructionTransform",
    "LatentCacheDataset",
    "MixupCutmix",
    "RandAugment",
    "VideoClipDataset",
    "build_latent_cache",
    "load_digits_dataset",
    "load_moving_digits_dataset",
    "make_moving_image_videos",
    "read_image",
    "smooth_one_hot",
]
