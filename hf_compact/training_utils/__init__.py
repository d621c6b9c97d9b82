"""Helpers shared by the Accelerate training scripts in ``training/``."""

from .accelerator import build_accelerator
from .arguments import parse_args_with_config
from .checkpointing import (
    UnsafeCheckpointError,
    find_latest_checkpoint,
    load_checkpoint,
    resolve_resume_checkpoint,
    save_checkpoint,
)
from hf_compact.utils.run_files import RESULTS_FILE, TRAINING_CONFIG_FILE
from hf_compact.utils.secrets import redact_secrets

from .run import (
    TrainingRun,
    add_run_arguments,
    check_run_arguments,
    prepare_output_dir,
    updates_per_epoch,
)

__all__ = [
    "RESULTS_FILE",
    "TRAINING_CONFIG_FILE",
    "TrainingRun",
    "UnsafeCheckpointError",
    "add_run_arguments",
    "build_accelerator",
    "check_run_arguments",
    "find_latest_checkpoint",
    "load_checkpoint",
    "parse_args_with_config",
    "prepare_output_dir",
    "redact_secrets",
    "resolve_resume_checkpoint",
    "save_checkpoint",
    "updates_per_epoch",
]
