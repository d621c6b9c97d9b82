"""Helpers shared by the Accelerate training scripts in ``training/``."""

from .accelerator import build_accelerator
from .arguments import parse_args_with_config
from .checkpointing import (
    find_latest_checkpoint,
    load_checkpoint,
    resolve_resume_checkpoint,
    resume_position,
    save_checkpoint,
)

__all__ = [
    "build_accelerator",
    "find_latest_checkpoint",
    "load_checkpoint",
    "parse_args_with_config",
    "resolve_resume_checkpoint",
    "resume_position",
    "save_checkpoint",
]
