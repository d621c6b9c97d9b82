"""Datasets, transforms and latent caching used by the training scripts.

The names below are imported on first use, so that ``hf_compact.data.splits`` (what the scripts' flags need) loads
without torch or datasets.
"""

import importlib

_SUBMODULE_OF = {
    "ClassificationTrainAugmentation": "classification_transforms",
    "RandAugment": "classification_transforms",
    "DIGIT_NAMES": "digits",
    "digits_pixel_values": "digits",
    "load_digits_dataset": "digits",
    "read_image": "images",
    "LatentCacheDataset": "latent_cache",
    "build_latent_cache": "latent_cache",
    "MixupCutmix": "mixup",
    "smooth_one_hot": "mixup",
    "load_moving_digits_dataset": "moving_digits",
    "make_moving_image_videos": "moving_digits",
    "ImageReconstructionDataset": "reconstruction_data",
    "ImageReconstructionTransform": "reconstruction_data",
    "VideoArrayDataset": "reconstruction_data",
    "VideoClipDataset": "reconstruction_data",
    "StreamingDataLoader": "streaming",
    "load_streaming_dataset": "streaming",
}

__all__ = sorted(_SUBMODULE_OF, key=str.lower)


def __getattr__(name: str):
    if name not in _SUBMODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_SUBMODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
