"""Durable training checkpoints on top of ``Accelerator.save_state`` / ``load_state`` that never unpickle code.

Layout of ``OUTPUT_DIR/checkpoint-STEP``: Accelerate's files (``model*.safetensors``, ``optimizer*.bin``,
``scheduler*.bin``, ``random_states_*.pkl``...), one ``NAME.safetensors`` + ``NAME.json`` pair per extra stateful
object (an EMA...) and ``training_state.json``, which marks the checkpoint complete and records the step (and what
the run engine keeps with it: flags, segments, losses). Folder names come from :mod:`hf_compact.utils.run_files`.

Writing: everything goes to ``.checkpoint-STEP.partial`` first; every file and the folder are fsynced, then one
``os.replace`` commits it. Re-saving an existing step first renames the old copy to ``checkpoint-STEP.previous``,
which :func:`find_latest_checkpoint` still recognises, so no moment exists where the only complete copy is
hidden. A failed save removes its ``.partial`` folder (one killed midway leaves it until the next start, which
removes it); a full disk raises an ``OSError`` naming the path and ENOSPC. Rotation keeps the newest checkpoints and
removes a symbolic link to a checkpoint as a link, never its target.

Reading: Accelerate loads registered custom objects with ``torch.load(weights_only=False)``, i.e. it runs whatever
a planted pickle contains. Nothing is registered here: extra state is safetensors + JSON. Before
``load_state``, every file of the checkpoint is checked (safetensors header, JSON, or ``torch.load(...,
weights_only=True)`` for Accelerate's tensor files); anything else is refused with an error that names the file.
The random states are restored explicitly and a failure is raised, not swallowed.

Exact resumption also needs randomness that depends only on the seed and the position in the run: see the seeding
policy of the recipes' run engine (``training/run_engine/run.py``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils.other import load as accelerate_load
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from hf_compact.utils.run_files import (
    ABANDONED_DIR,
    CHECKPOINT_PATTERN,
    PARTIAL_PATTERN,
    STATE_FILE,
    checkpoint_name,
    partial_checkpoint_name,
    previous_checkpoint_name,
)

logger = logging.getLogger(__name__)

# Files Accelerate writes with torch.save and reads back with weights_only=True (plain tensors and numbers).
TORCH_FILE_PATTERN = re.compile(
    r"^(optimizer(_\d+)?\.bin|scheduler(_\d+)?\.bin|sampler(_\d+)?\.bin|dl_state_dict(_\d+)?\.bin|"
    r"pytorch_model(_\d+)?\.bin|random_states_\d+\.pkl|scaler\.pt)$"
)


class UnsafeCheckpointError(ValueError):
    """A checkpoint file that cannot be read without running code (or that is not a checkpoint file at all)."""


# --------------------------------------------------------------------------------------------------- saving


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | os.PathLike,
    step: int,
    total_limit: int | None = None,
    extra_state: dict | None = None,
    stateful: dict[str, Any] | None = None,
) -> Path:
    """Save the full training state as ``output_dir/checkpoint-{step}``; call it on every process.

    Args:
        accelerator: the run's accelerator (its prepared models, optimizers and schedulers are saved).
        output_dir: run folder.
        step: number of optimizer updates done so far.
        total_limit: keep at most this many checkpoints (>= 1; oldest removed first, never the one just written);
            ``None`` keeps all.
        extra_state: JSON-serialisable values stored beside the step (e.g. the epoch).
        stateful: objects with ``state_dict()`` / ``load_state_dict()`` (an ``EMAModel``...) saved as
            ``NAME.safetensors`` + ``NAME.json``; their state holds tensors, lists of tensors and JSON values.

    Returns:
        The path of the completed checkpoint.
    """
    if total_limit is not None and total_limit < 1:
        raise ValueError(f"--checkpoints_total_limit: expected at least 1 (or None to keep all), got {total_limit}.")
    output_dir = Path(output_dir)
    final_path = output_dir / checkpoint_name(step)
    staging_path = output_dir / partial_checkpoint_name(step)
    try:
        if accelerator.is_main_process:
            shutil.rmtree(staging_path, ignore_errors=True)
            staging_path.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging_path))
        # On every process: the state of an object over sharded parameters is gathered by a collective.
        states = {name: obj.state_dict() for name, obj in (stateful or {}).items()}
        if accelerator.is_main_process:
            for name, state in states.items():
                save_state_dict(state, staging_path, name)
            state = {"step": step, **(extra_state or {})}
            (staging_path / STATE_FILE).write_text(json.dumps(state, indent=2, default=str))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            fsync_tree(staging_path)
            _commit(staging_path, final_path, output_dir / previous_checkpoint_name(step))
    except BaseException as error:
        if accelerator.is_main_process:
            shutil.rmtree(staging_path, ignore_errors=True)
        disk_full_error = _disk_full_error(error, staging_path)
        if disk_full_error is not None:
            raise disk_full_error from error
        raise
    if accelerator.is_main_process and total_limit is not None:
        rotate_checkpoints(output_dir, total_limit, keep=final_path)
    accelerator.wait_for_everyone()
    return final_path


def _commit(staging_path: Path, final_path: Path, previous_path: Path) -> None:
    """Rename ``staging_path`` to ``final_path``; an existing ``final_path`` stays findable as ``previous_path``."""
    if final_path.exists() or final_path.is_symlink():
        if previous_path.exists() or previous_path.is_symlink():
            remove_checkpoint(previous_path)
        os.replace(final_path, previous_path)
    os.replace(staging_path, final_path)
    fsync_directory(final_path.parent)
    if previous_path.exists() or previous_path.is_symlink():
        remove_checkpoint(previous_path)


def _disk_full_error(error: BaseException, path: Path) -> OSError | None:
    """An ``OSError`` naming the path and ENOSPC when ``error`` comes from a full disk (torch.save only says
    ``basic_ios::clear: iostream error``, safetensors raises a ``SafetensorError`` with the OS message), else
    ``None``."""
    disk_full = isinstance(error, OSError) and error.errno == errno.ENOSPC
    if isinstance(error, SafetensorError):
        disk_full = os.strerror(errno.ENOSPC) in str(error) or f"os error {errno.ENOSPC})" in str(error)
    if isinstance(error, RuntimeError) and "iostream" in str(error):
        disk_full = shutil.disk_usage(path.parent if path.parent.exists() else "/").free < 64 * 2**20
    if not disk_full:
        return None
    return OSError(
        errno.ENOSPC,
        f"No space left on device (ENOSPC) while writing the checkpoint {path}; {error}",
        str(path),
    )


def fsync_tree(folder: Path) -> None:
    """fsync every file below ``folder``, then every folder (the data first, then the names that point to it)."""
    folders = [folder]
    for path in folder.rglob("*"):
        if path.is_dir():
            folders.append(path)
        else:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for path in reversed(folders):
        fsync_directory(path)


def fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def rotate_checkpoints(output_dir: Path, total_limit: int, keep: Path) -> list[Path]:
    """Delete the oldest completed checkpoints until ``total_limit`` remain; ``keep`` is never deleted."""
    completed = _completed_checkpoints(output_dir)
    removable = [path for path in completed if path != keep]
    removed = removable[: max(0, len(completed) - total_limit)]
    for path in removed:
        remove_checkpoint(path)
    return removed


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint folder; a symbolic link (a checkpoint kept on another disk) loses only the link."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path)


def clean_partial_checkpoints(output_dir: Path) -> list[Path]:
    """Delete the ``.checkpoint-STEP.partial`` folders that a save killed midway left in ``output_dir``; call it
    only while holding the run lock (another job's save in progress looks the same)."""
    partial = [path for path in output_dir.iterdir() if PARTIAL_PATTERN.match(path.name)]
    for path in partial:
        remove_checkpoint(path)
        logger.warning("Removed %s, left by a save that did not finish", path)
    return partial


def save_state_dict(state: dict[str, Any], folder: Path, name: str) -> None:
    """``state`` -> ``folder/name.safetensors`` (its tensors) + ``folder/name.json`` (everything else)."""
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().contiguous()
            layout[key] = {"tensor": key}
        elif isinstance(value, (list, tuple)) and value and all(isinstance(item, torch.Tensor) for item in value):
            for index, item in enumerate(value):
                tensors[f"{key}.{index}"] = item.detach().cpu().contiguous()
            layout[key] = {"tensor_list": len(value)}
        elif value is None or isinstance(value, (bool, int, float, str)):
            layout[key] = {"value": value}
        else:
            raise TypeError(
                f"{name}.state_dict()[{key!r}]: expected tensors, lists of tensors or JSON values, got "
                f"{type(value).__name__}."
            )
    save_file(tensors, folder / f"{name}.safetensors")
    (folder / f"{name}.json").write_text(json.dumps(layout, indent=2))


def load_state_dict(folder: Path, name: str) -> dict[str, Any]:
    """The state saved by :func:`save_state_dict` (safetensors and JSON only)."""
    tensors = load_file(folder / f"{name}.safetensors")
    state = {}
    for key, entry in json.loads((folder / f"{name}.json").read_text()).items():
        if "tensor" in entry:
            state[key] = tensors[entry["tensor"]]
        elif "tensor_list" in entry:
            state[key] = [tensors[f"{key}.{index}"] for index in range(entry["tensor_list"])]
        else:
            state[key] = entry["value"]
    return state


# -------------------------------------------------------------------------------------------------- finding


def find_latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The completed checkpoint with the highest step in ``output_dir``, or ``None`` if there is none."""
    checkpoints = _completed_checkpoints(Path(output_dir))
    return checkpoints[-1] if checkpoints else None


def resolve_resume_checkpoint(resume_from_checkpoint: str | None, output_dir: str | os.PathLike) -> Path | None:
    """Turn ``--resume_from_checkpoint`` (``None``, ``"latest"`` or a path) into a checkpoint folder.

    ``"latest"`` with no checkpoint yet returns ``None`` (a fresh start), so the same command line can be
    used to start and to restart a job. An explicit path must be a completed checkpoint.
    """
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        return find_latest_checkpoint(output_dir)
    path = Path(resume_from_checkpoint)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint: expected a completed checkpoint folder containing {STATE_FILE}, "
            f"got {str(path)!r}."
        )
    return path


def checkpoint_state(path: Path) -> dict[str, Any]:
    """The ``training_state.json`` of a checkpoint: its step, epoch and what the engine recorded with them."""
    return json.loads((path / STATE_FILE).read_text())


def checkpoint_step(path: Path) -> int:
    return checkpoint_state(path)["step"]


def _completed_checkpoints(output_dir: Path) -> list[Path]:
    """Completed checkpoints by step; a ``.previous`` copy only counts when its step has no primary copy."""
    if not output_dir.is_dir():
        return []
    by_step: dict[int, Path] = {}
    for path in sorted(output_dir.iterdir(), key=lambda path: path.name.endswith(".previous")):
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / STATE_FILE).is_file():
            by_step.setdefault(int(match.group(1)), path)
    return [by_step[step] for step in sorted(by_step)]


def set_aside_later_checkpoints(output_dir: Path, step: int) -> list[Path]:
    """Move the checkpoints after ``step`` (a run resumed from an earlier one abandons them) to
    ``output_dir/abandoned-checkpoints/``, where ``latest`` and the rotation never look."""
    moved = []
    for path in _completed_checkpoints(output_dir):
        if checkpoint_step(path) > step:
            target_folder = output_dir / ABANDONED_DIR
            target_folder.mkdir(exist_ok=True)
            target = target_folder / path.name
            suffix = 1
            while target.exists():
                target, suffix = target_folder / f"{path.name}.{suffix}", suffix + 1
            os.replace(path, target)
            logger.warning("Resuming from step %d: moved the abandoned later checkpoint %s to %s", step, path, target)
            moved.append(target)
    return moved


# -------------------------------------------------------------------------------------------------- loading


def verify_checkpoint_files(checkpoint: Path) -> None:
    """Check that every file of ``checkpoint`` can be read without running code; raise naming the first that can't.

    Raises:
        UnsafeCheckpointError: a file is not safetensors, JSON or a plain-tensor torch file.
    """
    for path in sorted(checkpoint.rglob("*")):
        if path.is_dir():
            continue
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt"):
                    pass
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif TORCH_FILE_PATTERN.match(path.name):
                _torch_load_weights_only(path, mmap=True)
            else:
                raise UnsafeCheckpointError(
                    "not a file this package writes into checkpoints (registered custom objects are pickled by "
                    "Accelerate and loaded with weights_only=False, so they are refused)"
                )
        except Exception as error:
            reason = error if isinstance(error, UnsafeCheckpointError) else f"{type(error).__name__}: {error}"
            raise UnsafeCheckpointError(
                f"--resume_from_checkpoint: refusing {path}: {reason}. Checkpoints are loaded only as safetensors, "
                "JSON and plain tensors (torch.load(weights_only=True)); remove the file if you did not write it."
            ) from None


def _torch_load_weights_only(path: Path, mmap: bool = False):
    """``torch.load(weights_only=True)`` with the NumPy globals Accelerate's random states need."""
    return accelerate_load(path, map_location="cpu", weights_only=True, mmap=mmap)


def load_checkpoint(
    accelerator: Accelerator, checkpoint: str | os.PathLike, stateful: dict[str, Any] | None = None
) -> dict:
    """Restore everything ``save_checkpoint`` saved; returns the stored state (``{"step": ..., ...}``).

    Raises:
        UnsafeCheckpointError: a file of the checkpoint cannot be read without running code.
        RuntimeError: the random states cannot be restored (the run would not repeat an uninterrupted one).
    """
    checkpoint = Path(checkpoint)
    verify_checkpoint_files(checkpoint)
    accelerator.load_state(str(checkpoint), load_kwargs={"weights_only": True})
    restore_random_states(checkpoint, accelerator.process_index)
    for name, obj in (stateful or {}).items():
        if not (checkpoint / f"{name}.safetensors").is_file():
            raise FileNotFoundError(
                f"--resume_from_checkpoint: {checkpoint} has no {name}.safetensors for the {name}."
            )
        obj.load_state_dict(load_state_dict(checkpoint, name))
    return checkpoint_state(checkpoint)


def restore_random_states(checkpoint: Path, process_index: int) -> None:
    """Python, NumPy, torch (and CUDA) generators from ``random_states_{process_index}.pkl``; raises on failure
    (Accelerate only logs ``Could not load random states`` at INFO level)."""
    path = checkpoint / f"random_states_{process_index}.pkl"
    try:
        states = _torch_load_weights_only(path)
        random.setstate(states["random_state"])
        np.random.set_state(states["numpy_random_seed"])
        torch.set_rng_state(states["torch_manual_seed"])
        cuda_states = states.get("torch_cuda_manual_seed")
        if cuda_states is not None and torch.cuda.is_available():
            if isinstance(cuda_states, torch.Tensor):
                torch.cuda.set_rng_state(cuda_states)
            else:
                torch.cuda.set_rng_state_all(cuda_states)
    except Exception as error:
        raise RuntimeError(
            f"--resume_from_checkpoint: could not restore the random states from {path} ({type(error).__name__}: "
            f"{error}); the resumed run would not repeat an uninterrupted one."
        ) from error
