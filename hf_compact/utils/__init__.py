"""Utilities shared by the models, losses, metrics, converters and training scripts: pretrained weight files,
state-dict checks, video frame folding and derived seeds. Nothing here imports the models."""

from .frames import fold_frames_into_batch
from .seeds import derive_seed
from .state_dict import check_state_dict, rename_keys, strip_prefixes
from .weight_files import load_state_dict_file, resolve_weight_file

__all__ = [
    "check_state_dict",
    "derive_seed",
    "fold_frames_into_batch",
    "load_state_dict_file",
    "rename_keys",
    "resolve_weight_file",
    "strip_prefixes",
]
