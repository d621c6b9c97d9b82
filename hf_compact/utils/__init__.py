"""Utilities shared by the models, losses, metrics, converters, the Hub helpers and the training engine: pretrained
weight files, state-dict checks, video frame folding, derived seeds, the names of a run folder's
files (:mod:`.run_files`) and the credential filter. Nothing here imports the models or the training engine."""

from .frames import fold_frames_into_batch
from .secrets import redact_secrets
from .seeds import derive_seed
from .state_dict import check_state_dict, rename_keys, strip_prefixes
from .weight_files import load_state_dict_file, resolve_weight_file

__all__ = [
    "check_state_dict",
    "derive_seed",
    "fold_frames_into_batch",
    "load_state_dict_file",
    "redact_secrets",
    "rename_keys",
    "resolve_weight_file",
    "strip_prefixes",
]
