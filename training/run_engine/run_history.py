"""What a resume may change: the flags that fix the optimisation and the data order, and the run's history.

A checkpoint records the flags of the launch that wrote it and the run's segments (one per launch: its flags, the
updates it made, its number of processes). A resume compares the flags of :data:`RESUME_FLAGS` (and the number of
processes, which sets the global batch) with the checkpoint's and refuses any change unless ``--allow_changed_flags``
is given; then the new values take effect (see :meth:`~run_engine.TrainingRun.resume`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from accelerate import Accelerator

# Flags whose change on resume would change the optimisation or the data order (names shared by the scripts;
# a script passes ``resume_flags=RESUME_FLAGS | {...}`` to TrainingRun for its own).
RESUME_FLAGS = frozenset(
    {
        # optimisation and schedule
        "learning_rate", "scale_lr", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
        "lr_scheduler", "lr_warmup_steps", "lr_warmup_ratio", "num_warmup_steps", "warmup_epochs", "warmup_lr",
        "min_lr", "min_lr_ratio", "cooldown_epochs", "num_train_epochs", "max_train_steps", "label_smoothing",
        "mixed_precision",
        # batch
        "per_device_train_batch_size", "gradient_accumulation_steps",
        # randomness and data order
        "seed",
        # data
        "dataset_name", "dataset_config_name", "train_dir", "train_file", "max_train_samples", "train_val_split",
        "image_size", "resolution", "streaming", "data_files", "shuffle_buffer_size",
        # model
        "preset", "model_name_or_path", "config_overrides", "model_overrides",
    }
)  # fmt: skip
# Not a flag, compared like one: the number of processes sets the global batch and the shards of the data.
NUM_PROCESSES = "num_processes"


def json_flags(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it reads back from JSON (paths and tuples become strings and lists), for comparisons."""
    return json.loads(json.dumps(dict(config), default=str))


def changed_flags(old: Mapping[str, Any], new: Mapping[str, Any], names: Iterable[str]) -> dict[str, tuple[Any, Any]]:
    """``{name: (old value, new value)}`` for the ``names`` whose values differ between two flag sets."""
    return {
        name: (old.get(name), new.get(name))
        for name in sorted(set(names))
        if (name in old or name in new) and old.get(name) != new.get(name)
    }


def describe_changes(changes: Mapping[str, tuple[Any, Any]]) -> str:
    """``--learning_rate 0.001 -> 0.1, number of processes 1 -> 2``."""
    return ", ".join(
        f"{'number of processes' if name == NUM_PROCESSES else '--' + name} {old!r} -> {new!r}"
        for name, (old, new) in changes.items()
    )


def public_history(segments: list[dict[str, Any]], final_flags: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The segments as ``training_config.json`` shows them: steps, processes, and only the flags that differ from
    the final ones (the file's top level)."""
    return [
        {
            "steps": [segment["start_step"], segment["end_step"]],
            NUM_PROCESSES: segment[NUM_PROCESSES],
            "flags": {name: value for name, value in segment["flags"].items() if final_flags.get(name, None) != value},
        }
        for segment in segments
    ]


def optimizer_settings(accelerator: Accelerator) -> tuple[list[list[dict[str, Any]]], list[list[float] | None]]:
    """The prepared optimizers' param-group settings (``lr``, ``betas``, ``weight_decay``...: all but the
    parameters) and the prepared schedulers' peak learning rates, as the flags of this launch set them."""
    groups = [
        [copy.deepcopy({key: value for key, value in group.items() if key != "params"}) for group in opt.param_groups]
        for opt in accelerator._optimizers
    ]
    peaks = [list(getattr(_unwrapped(scheduler), "base_lrs", [])) or None for scheduler in accelerator._schedulers]
    return groups, peaks


def restore_optimizer_settings(
    accelerator: Accelerator, settings: tuple[list[list[dict[str, Any]]], list[list[float] | None]]
) -> None:
    """Put :func:`optimizer_settings` back over those a checkpoint restored; a ``LambdaLR`` schedule (what
    ``transformers.get_scheduler`` and the scripts build) recomputes its learning rates at the restored step."""
    groups, peaks = settings
    for optimizer, optimizer_groups in zip(accelerator._optimizers, groups):
        for group, setting in zip(optimizer.param_groups, optimizer_groups):
            group.update(setting)
    for scheduler, base_lrs in zip(accelerator._schedulers, peaks):
        scheduler = _unwrapped(scheduler)
        if base_lrs is None or not hasattr(scheduler, "lr_lambdas"):
            continue
        scheduler.base_lrs = base_lrs
        learning_rates = [
            peak * lr_lambda(scheduler.last_epoch) for peak, lr_lambda in zip(base_lrs, scheduler.lr_lambdas)
        ]
        for group, learning_rate in zip(scheduler.optimizer.param_groups, learning_rates):
            group["lr"] = learning_rate
        scheduler._last_lr = learning_rates


def _unwrapped(scheduler):
    """The torch scheduler inside Accelerate's ``AcceleratedScheduler``."""
    return getattr(scheduler, "scheduler", scheduler)
