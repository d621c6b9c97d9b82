"""Helpers shared by the Accelerate training scripts in ``training/``."""

from hf_compact.utils.run_files import RESULTS_FILE, TRAINING_CONFIG_FILE
from hf_compact.utils.secrets import redact_secrets

from .accelerator import build_accelerator
from .arguments import parse_args_with_config
from .checkpointing import (
    UnsafeCheckpointError,
    find_latest_checkpoint,
    load_checkpoint,
    resolve_resume_checkpoint,
    save_checkpoint,
)
from .preemption import PREEMPTED_EXIT_CODE, RunPreempted
from .run import (
    TrainingRun,
    add_run_arguments,
    check_run_arguments,
    prepare_output_dir,
    updates_per_epoch,
)
from .run_history import RESUME_FLAGS
from .run_lock import RunFolderInUseError

__all__ = [
    "PREEMPTED_EXIT_CODE",
    "RESULTS_FILE",
    "RESUME_FLAGS",
    "TRAINING_CONFIG_FILE",
    "RunFolderInUseError",
    "RunPreempted",
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
