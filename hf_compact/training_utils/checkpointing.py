"""Crash-safe training checkpoints on top of ``Accelerator.save_state`` / ``load_state``.

A checkpoint ``OUTPUT_DIR/checkpoint-STEP`` is first written to a hidden temporary folder and renamed into
place only when every process has finished writing, so a crash mid-write never replaces or corrupts the
last good checkpoint. ``training_state.json`` inside it marks it complete and records the step.

Exact resumption also needs a dataloader whose shuffling depends only on (seed, epoch): build the
``Accelerator`` with ``DataLoaderConfiguration(use_seedable_sampler=True)``, call
``dataloader.set_epoch(epoch)`` every epoch and skip the batches of the partial epoch with
``accelerator.skip_first_batches``. Model, optimizer, scheduler, RNG states and every object registered with
``accelerator.register_for_checkpointing`` (an EMA, a discriminator...) come back through ``load_state``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "training_state.json"


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | os.PathLike,
    step: int,
    total_limit: int | None = None,
    extra_state: dict | None = None,
) -> Path:
    """Save the full training state as ``output_dir/checkpoint-{step}``; call it on every process.

    Args:
        accelerator: the run's accelerator (its prepared model, optimizer, scheduler and registered objects
            are saved).
        output_dir: run folder.
        step: number of optimizer updates done so far.
        total_limit: keep at most this many checkpoints (oldest removed first); ``None`` keeps all.
        extra_state: JSON-serialisable values stored beside the step (e.g. the epoch).

    Returns:
        The path of the completed checkpoint.
    """
    output_dir = Path(output_dir)
    final_path = output_dir / f"checkpoint-{step}"
    staging_path = output_dir / f".checkpoint-{step}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(staging_path, ignore_errors=True)
        staging_path.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging_path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"step": step, **(extra_state or {})}
        (staging_path / STATE_FILE).write_text(json.dumps(state, indent=2))
        if final_path.exists():
            stale_path = output_dir / f".checkpoint-{step}.stale"
            shutil.rmtree(stale_path, ignore_errors=True)
            os.replace(final_path, stale_path)
            os.replace(staging_path, final_path)
            shutil.rmtree(stale_path)
        else:
            os.replace(staging_path, final_path)
        if total_limit is not None:
            for old_checkpoint in _completed_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old_checkpoint)
    accelerator.wait_for_everyone()
    return final_path


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


def load_checkpoint(accelerator: Accelerator, checkpoint: str | os.PathLike) -> dict:
    """Restore everything ``save_checkpoint`` saved; returns the stored state (``{"step": ..., ...}``)."""
    checkpoint = Path(checkpoint)
    accelerator.load_state(str(checkpoint))
    return json.loads((checkpoint / STATE_FILE).read_text())


def _completed_checkpoints(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def resume_position(
    accelerator: Accelerator,
    resume_from_checkpoint: str | None,
    output_dir: str | os.PathLike,
    updates_per_epoch: int,
    gradient_accumulation_steps: int,
) -> tuple[int, int, int]:
    """Restore ``--resume_from_checkpoint`` (if any) and say where the training loop picks up.

    Returns:
        ``(completed_steps, starting_epoch, batches_to_skip)``: optimizer updates already done, the epoch to start
        in, and how many batches of that epoch to skip with ``accelerator.skip_first_batches``. ``(0, 0, 0)`` for a
        fresh start.
    """
    checkpoint = resolve_resume_checkpoint(resume_from_checkpoint, output_dir)
    if checkpoint is None:
        return 0, 0, 0
    accelerator.print(f"Resuming from {checkpoint}")
    completed_steps = load_checkpoint(accelerator, checkpoint)["step"]
    batches_to_skip = (completed_steps % updates_per_epoch) * gradient_accumulation_steps
    return completed_steps, completed_steps // updates_per_epoch, batches_to_skip
