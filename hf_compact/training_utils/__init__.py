"""Training helpers: the Accelerator of a recipe, ``--config`` files, checkpoints that load only tensors and JSON,
sharded EMA and evaluation under FSDP, learning-rate schedules. The recipes' run engine (run folder, resume,
preemption) is ``training/run_engine``, beside the scripts."""

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

__all__ = [
    "RESULTS_FILE",
    "TRAINING_CONFIG_FILE",
    "UnsafeCheckpointError",
    "build_accelerator",
    "find_latest_checkpoint",
    "load_checkpoint",
    "parse_args_with_config",
    "redact_secrets",
    "resolve_resume_checkpoint",
    "save_checkpoint",
]
