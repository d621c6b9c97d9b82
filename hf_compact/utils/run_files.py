"""The names of the files and folders of a training run folder (``--output_dir``), defined once.

The recipes' run engine (``training/run_engine``) writes them and :mod:`hf_compact.hub` reads them; both
import the names from here, so neither imports the other for a file name. Layout::

    OUTPUT_DIR/
        all_results.json            RESULTS_FILE: the end-of-run results (one schema for every script)
        training_config.json        TRAINING_CONFIG_FILE: the run's flags, credentials removed, and its history
        checkpoint-STEP/            a completed checkpoint (holds STATE_FILE)
        checkpoint-STEP.previous/   the older copy of a step being saved again, until the new copy is committed
        .checkpoint-STEP.partial/   a checkpoint being written; left-overs of a killed save are removed at start
        abandoned-checkpoints/      checkpoints after the step a run was resumed from
        .run.lock                   LOCK_FILE: held by the launch that uses the folder
"""

from __future__ import annotations

import re

RESULTS_FILE = "all_results.json"
TRAINING_CONFIG_FILE = "training_config.json"
# Files that show that a folder holds a run (older versions of the scripts wrote results.json).
LEGACY_RESULTS_FILE = "results.json"
RUN_MARKERS = (RESULTS_FILE, LEGACY_RESULTS_FILE, TRAINING_CONFIG_FILE)
# Key of TRAINING_CONFIG_FILE that lists the run's segments (one per launch: its flags and steps); not a flag.
RUN_HISTORY_KEY = "run_history"

STATE_FILE = "training_state.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)(\.previous)?$")
PARTIAL_PATTERN = re.compile(r"^\.checkpoint-(\d+)\.partial$")
ABANDONED_DIR = "abandoned-checkpoints"
LOCK_FILE = ".run.lock"


def checkpoint_name(step: int) -> str:
    """``checkpoint-STEP``: the folder of the checkpoint written after ``step`` optimizer updates."""
    return f"checkpoint-{step}"


def previous_checkpoint_name(step: int) -> str:
    """``checkpoint-STEP.previous``: the older copy of a step that is being saved again."""
    return f"{checkpoint_name(step)}.previous"


def partial_checkpoint_name(step: int) -> str:
    """``.checkpoint-STEP.partial``: the staging folder of a checkpoint being written."""
    return f".{checkpoint_name(step)}.partial"


__all__ = [
    "ABANDONED_DIR",
    "CHECKPOINT_PATTERN",
    "LEGACY_RESULTS_FILE",
    "LOCK_FILE",
    "PARTIAL_PATTERN",
    "RESULTS_FILE",
    "RUN_HISTORY_KEY",
    "RUN_MARKERS",
    "STATE_FILE",
    "TRAINING_CONFIG_FILE",
    "checkpoint_name",
    "partial_checkpoint_name",
    "previous_checkpoint_name",
]
