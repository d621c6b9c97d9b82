"""The run mechanics shared by every Accelerate training script of ``training/``: flags, run folder, batches, limits,
the end.

A script reads like the diffusers examples, with its step body inline::

    parser = argparse.ArgumentParser(...)
    add_run_arguments(parser)                      # --output_dir, --seed, --gradient_accumulation_steps, ...
    args = parse_args_with_config(parser, argv); check_run_arguments(args)
    accelerator = build_accelerator(args, args.output_dir)
    output_dir = prepare_output_dir(args, accelerator)  # locks the folder; refuses to overwrite a run
    ...
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    run = TrainingRun(accelerator, args, train_dataloader, max_train_steps, stateful={"ema": ema})
    run.resume()                                   # --resume_from_checkpoint, if any
    for batch in run:                              # set_epoch, skipping, seeding, step / time limits
        with accelerator.accumulate(model):
            noise = torch.randn(shape, generator=run.step_generator())
            ...
        if accelerator.sync_gradients:
            ema.step(...)
            run.update_done(loss)                  # counts the update, records its loss, checkpoints, preemption
    run.save_final_checkpoint()
    ...                                            # evaluate, save the model
    run.finish(run.build_results(eval_metrics), push=...)  # all_results.json, training_config.json, push

Updates per epoch are counted as Accelerate syncs gradients: every ``gradient_accumulation_steps`` batches and on
the last batch of every epoch, i.e. ``ceil(batches / gradient_accumulation_steps)``.

Seeding (the one policy for exact resume): every random draw of training is a function of ``--seed`` and of its
position in the run, never of how far a generator has run before. A resumed run thus repeats a straight one
without replaying anything:

* the order of the batches depends on (seed, epoch): the seedable sampler of :func:`.build_accelerator`, or a
  ``DataLoader(generator=torch.Generator().manual_seed(seed))``;
* the draws of a training step (noise, masks, augmentations, Mixup...) come from ``run.step_generator()``, seeded
  with ``derive_seed(seed, process_index, micro_step)``; before every batch the engine also seeds the global
  generators (``random``, NumPy, torch CPU and CUDA) from the same position (another stream), so that what cannot
  take a generator (dropout, drop path, a library's augmentation) follows the same rule;
* a dataset that draws per item in ``DataLoader`` workers seeds a generator with ``derive_seed(seed, epoch, index)``
  and gets its epoch from ``set_epoch`` (pass it as ``epoch_datasets``).

Checkpoints still hold and restore the global generators' states (Accelerate saves them), which only matters for
draws made outside the loop.

Streaming data (a :class:`~hf_compact.data.streaming.StreamingDataLoader`, which ``accelerator.prepare`` leaves
as it is): its length is unknown, so the run lasts ``max_train_steps`` updates and an epoch ends when the stream of
any process runs dry (every process stops it at the same batch; one flag per batch is reduced across processes).
The engine moves its batches to the device; updates are counted every ``gradient_accumulation_steps`` batches
across epoch ends (there is no last batch to sync on). Checkpoints store every process's stream position, and a
resume continues each process's stream exactly where it stopped (see :mod:`hf_compact.data.streaming`).

A run on a cluster: the run folder is locked by one launch at a time (:mod:`.run_lock`); a resume refuses flags
that would change the optimisation or the data order unless ``--allow_changed_flags`` is given (:mod:`.run_history`),
and ``training_config.json`` lists the run's segments; SIGTERM / SIGUSR1 end the run at the next update with a
checkpoint and exit status 143 (:mod:`.preemption`).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast, broadcast_object_list, gather_object, send_to_device

from hf_compact.training_utils.checkpointing import (
    _completed_checkpoints,
    clean_partial_checkpoints,
    load_checkpoint,
    remove_checkpoint,
    resolve_resume_checkpoint,
    save_checkpoint,
    set_aside_later_checkpoints,
)
from hf_compact.utils.run_files import (
    ABANDONED_DIR,
    RESULTS_FILE,
    RUN_HISTORY_KEY,
    RUN_MARKERS,
    TRAINING_CONFIG_FILE,
)
from hf_compact.utils.secrets import redact_secrets
from hf_compact.utils.seeds import derive_seed, seed_global_generators

from .preemption import PreemptionSignals, RunPreempted
from .run_history import (
    NUM_PROCESSES,
    RESUME_FLAGS,
    changed_flags,
    describe_changes,
    json_flags,
    optimizer_settings,
    public_history,
    restore_optimizer_settings,
)
from .run_lock import acquire_run_lock, release_run_lock

logger = logging.getLogger(__name__)

DEFAULT_SEED = 42
# Last key of the seed of the global generators, so that they never repeat the stream of ``step_generator``.
GLOBAL_GENERATORS_STREAM = 1


def add_run_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the flags every training script shares (same names, defaults and help everywhere)."""
    run = parser.add_argument_group("run")
    run.add_argument("--output_dir", type=str, default=None, help="Run folder (required; may come from --config).")
    run.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="Delete the checkpoints and results of an earlier run in --output_dir and start afresh.",
    )
    run.add_argument("--seed", type=int, default=DEFAULT_SEED)
    run.add_argument(
        "--gradient_accumulation_steps",
        type=int,
        default=1,
        help="Batches whose gradients add up to one optimizer update.",
    )
    run.add_argument(
        "--mixed_precision",
        choices=("no", "fp16", "bf16"),
        default=None,
        help="Default: Accelerate's (its config file, else 'no').",
    )
    run.add_argument(
        "--max_train_steps", type=int, default=None, help="Total optimizer updates; overrides the epochs."
    )
    run.add_argument(
        "--max_train_seconds",
        type=float,
        default=None,
        help="Stop after this wall-clock budget (the model is still saved and evaluated).",
    )
    run.add_argument(
        "--checkpointing_steps",
        type=int,
        default=None,
        help="Save the training state every N updates (and always at the end).",
    )
    run.add_argument(
        "--checkpoints_total_limit",
        type=int,
        default=None,
        help="Keep at most N >= 1 checkpoints (the newest); default: keep all.",
    )
    run.add_argument(
        "--resume_from_checkpoint",
        type=str,
        default=None,
        help="A checkpoint folder or 'latest' (a fresh start when there is none yet).",
    )
    run.add_argument(
        "--allow_changed_flags",
        action="store_true",
        help="On resume, accept flags that change the optimisation or the data order (learning rate, batch size, "
        "seed, data, model...) and train on with the new values; without it such a resume is refused.",
    )
    run.add_argument("--with_tracking", action="store_true")
    run.add_argument("--report_to", type=str, default="all")
    run.add_argument("--push_to_hub", action="store_true")
    run.add_argument("--hub_model_id", type=str, default=None, help="Default: the name of --output_dir.")
    run.add_argument(
        "--hub_token",
        type=str,
        default=None,
        help="Hub token (default: the logged-in one). Never written to any file, card, log or tracker.",
    )
    return run


def check_run_arguments(args: argparse.Namespace) -> None:
    """Raise a ``ValueError`` naming the flag for bad run flags."""
    if args.output_dir is None:
        raise ValueError(
            "--output_dir: expected a run folder (on the command line or in the --config file), got None."
        )
    if args.gradient_accumulation_steps < 1:
        raise ValueError(
            f"--gradient_accumulation_steps: expected a positive integer, got {args.gradient_accumulation_steps}."
        )
    for name in ("max_train_steps", "checkpointing_steps", "checkpoints_total_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name}: expected a positive integer (or no flag), got {value}.")
    if args.max_train_seconds is not None and args.max_train_seconds <= 0:
        raise ValueError(f"--max_train_seconds: expected a positive number of seconds, got {args.max_train_seconds}.")
    if args.resume_from_checkpoint is not None and args.overwrite_output_dir:
        raise ValueError("--overwrite_output_dir: cannot be combined with --resume_from_checkpoint; pass one of them.")
    if args.push_to_hub:  # a repository id the Hub refuses fails now, not after training
        from hf_compact.hub import check_repo_id

        check_repo_id(args.hub_model_id or Path(args.output_dir).resolve().name, "--hub_model_id")


def updates_per_epoch(num_batches: int, gradient_accumulation_steps: int) -> int:
    """Optimizer updates in an epoch of ``num_batches`` (per process): Accelerate also syncs on the last batch."""
    return math.ceil(num_batches / gradient_accumulation_steps)


def prepare_output_dir(args: argparse.Namespace, accelerator: Accelerator) -> Path:
    """Create ``--output_dir``, check it can be written and lock it for this launch; call it on every process.

    A folder that already holds a run (results or checkpoints) is refused unless ``--resume_from_checkpoint``
    continues it or ``--overwrite_output_dir`` deletes its checkpoints and results first. Staging folders of a save
    that was killed midway (``.checkpoint-STEP.partial``) are removed.

    Raises:
        RunFolderInUseError: another job holds the folder (the message names the holder).
        ValueError: the folder holds a run and neither flag was given.
        OSError: the folder cannot be created or written (the message names it).
    """
    output_dir = Path(args.output_dir)
    _on_main_process(accelerator, lambda: _create_and_lock(output_dir))
    existing = sorted(path.name for path in _completed_checkpoints(output_dir))
    existing += [name for name in RUN_MARKERS if (output_dir / name).is_file()]
    if existing and args.resume_from_checkpoint is None and not args.overwrite_output_dir:
        raise ValueError(
            f"--output_dir: {str(output_dir)!r} already holds a run ({', '.join(existing[:6])}); pass "
            "--resume_from_checkpoint latest to continue it, --overwrite_output_dir to replace it, or another "
            "--output_dir."
        )
    if accelerator.is_main_process:
        if existing and args.overwrite_output_dir:
            _remove_run(output_dir, existing)
        clean_partial_checkpoints(output_dir)
    accelerator.wait_for_everyone()
    return output_dir


def _on_main_process(accelerator: Accelerator, step: Callable[[], None]) -> None:
    """Run ``step`` on the main process; what it raises is raised on every process (none is left waiting)."""
    error = None
    if accelerator.is_main_process:
        try:
            step()
        except Exception as exception:
            error = exception
    if accelerator.num_processes > 1:
        error = broadcast_object_list([error])[0]
    if error is not None:
        raise error


def _create_and_lock(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test-{os.getpid()}"
        with open(probe, "wb") as handle:
            handle.write(b"0")
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as error:
        raise OSError(
            error.errno,
            f"--output_dir: cannot write to {str(output_dir)!r} ({error.strerror or error})",
            str(output_dir),
        ) from error
    acquire_run_lock(output_dir)


def _remove_run(output_dir: Path, existing: list[str]) -> None:
    """``--overwrite_output_dir``: delete the checkpoints, set-aside checkpoints and end-of-run files of a run."""
    for path in _completed_checkpoints(output_dir):
        remove_checkpoint(path)
    shutil.rmtree(output_dir / ABANDONED_DIR, ignore_errors=True)
    for name in RUN_MARKERS:
        (output_dir / name).unlink(missing_ok=True)
    logger.warning("--overwrite_output_dir: removed the earlier run's %s from %s", ", ".join(existing), output_dir)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file and one rename; a full disk names the path and ENOSPC."""
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"No space left on device (ENOSPC) while writing {path}", str(path)) from error
        raise


class TrainingRun:
    """The batches of a run, resumable exactly, with its step / time limits, checkpoints and end-of-run files.

    Iterating yields the training batches of epoch after epoch (``set_epoch`` called on the dataloader and on
    ``epoch_datasets``, the global generators seeded for each batch), skipping on resume the batches of the updates a
    checkpoint already holds, and stops once ``max_train_steps`` updates are done or ``--max_train_seconds`` has
    passed (rank 0's clock decides for all). While it iterates, SIGTERM and SIGUSR1 stop the run at the next update
    with a checkpoint (:class:`~.preemption.RunPreempted`, exit status 143).

    Args:
        accelerator: the run's accelerator, its models, optimizers and schedulers prepared.
        args: the parsed flags (those of :func:`add_run_arguments` and the script's own).
        train_dataloader: the prepared training dataloader, or a
            :class:`~hf_compact.data.streaming.StreamingDataLoader` (not prepared: Accelerate must not shard it).
        max_train_steps: optimizer updates of the whole run (the only limit of a stream, whose length is unknown).
        stateful: extra objects saved in checkpoints (``state_dict`` / ``load_state_dict``), e.g. ``{"ema": ema}``.
        epoch_datasets: datasets whose ``set_epoch`` is called at the start of every epoch.
        resume_flags: flags that a resume may not change without ``--allow_changed_flags`` (default
            :data:`~.run_history.RESUME_FLAGS`; pass ``RESUME_FLAGS | {...}`` for a script's own).

    Attributes:
        completed_steps: optimizer updates done (``update_done`` counts them).
        epoch: the epoch the current batch belongs to.
        micro_step: batches consumed before the current one since the start of training (resumes included): the
            position that seeds the batch's randomness (see :meth:`step_generator`).
        first_train_loss, last_train_loss: losses of the run's first and last updates (given to
            :meth:`update_done`, kept across resumes; ``None`` without).
    """

    def __init__(
        self,
        accelerator: Accelerator,
        args: argparse.Namespace,
        train_dataloader,
        max_train_steps: int,
        stateful: dict[str, Any] | None = None,
        epoch_datasets: Iterable[Any] = (),
        resume_flags: Iterable[str] = RESUME_FLAGS,
    ):
        self.accelerator = accelerator
        self.args = args
        self.output_dir = Path(args.output_dir)
        self.train_dataloader = train_dataloader
        self.gradient_accumulation_steps = args.gradient_accumulation_steps
        self.max_train_steps = max_train_steps
        # A StreamingDataLoader (duck-typed: importing it would load datasets with the engine).
        self.stream = train_dataloader if hasattr(train_dataloader, "iter_with_positions") else None
        if self.stream is not None:
            self.num_batches = self.updates_per_epoch = self.num_epochs = None
            self._stream_position = self.stream.state_dict()
            self._stream_micro_steps = 0
        else:
            self.num_batches = len(train_dataloader)
            self.updates_per_epoch = updates_per_epoch(self.num_batches, self.gradient_accumulation_steps)
            self.num_epochs = math.ceil(max_train_steps / self.updates_per_epoch)
        self.stateful = {name: obj for name, obj in (stateful or {}).items() if obj is not None}
        self.epoch_datasets = list(epoch_datasets)
        self.resume_flags = frozenset(resume_flags) | {NUM_PROCESSES}
        self.completed_steps = 0
        self.epoch = 0
        self.micro_step = 0
        self.first_train_loss: float | None = None
        self.last_train_loss: float | None = None
        self._flags = json_flags(self.public_config())
        self._earlier_segments: list[dict[str, Any]] = []
        self._segment_start_step = 0
        self._earlier_seconds = 0.0
        self._batches_to_skip = 0
        self._last_checkpoint_step: int | None = None
        self._out_of_time = False
        self._signals = PreemptionSignals()
        self._started = time.monotonic()

    # ---- configuration that leaves the process

    def public_config(self) -> dict[str, Any]:
        """``vars(args)`` without credentials (the only form of the config that is written, logged or tracked)."""
        return redact_secrets(vars(self.args))

    def init_trackers(self, project_name: str) -> None:
        if self.args.with_tracking:
            scalars = {k: v for k, v in self.public_config().items() if isinstance(v, (int, float, str, bool))}
            self.accelerator.init_trackers(project_name, config=scalars)

    # ---- resume

    def resume(self) -> None:
        """Restore ``--resume_from_checkpoint`` (if any) and position the batches right after its last update.

        Flags of ``resume_flags`` (and the number of processes) that differ from the checkpoint's are refused, or,
        with ``--allow_changed_flags``, take effect: the optimizers' hyper-parameters (``lr``, ``betas``,
        ``weight_decay``...) are the new ones and a ``LambdaLR`` schedule restarts from the new peak at the resumed
        step; the batch order follows the new batch size from the resumed update on. Checkpoints written after the
        resumed one belong to an abandoned future: they are moved to ``abandoned-checkpoints/`` so that ``latest``
        and the rotation never pick them.

        Raises:
            ValueError: a flag changed without ``--allow_changed_flags`` (the message names each flag, old and new).
        """
        checkpoint = resolve_resume_checkpoint(self.args.resume_from_checkpoint, self.output_dir)
        if checkpoint is None:
            return
        self.accelerator.print(f"Resuming from {checkpoint}")
        new_settings = optimizer_settings(self.accelerator)
        state = load_checkpoint(self.accelerator, checkpoint, self.stateful)
        if self._changed_flags(checkpoint, state):
            restore_optimizer_settings(self.accelerator, new_settings)
        self._restore_run_record(state)
        self.completed_steps = self._segment_start_step = state["step"]
        if self.accelerator.is_main_process:
            set_aside_later_checkpoints(self.output_dir, self.completed_steps)
        self.accelerator.wait_for_everyone()
        self._last_checkpoint_step = self.completed_steps
        if self.stream is not None:
            self._resume_stream(checkpoint, state)
            return
        self.epoch, updates_into_epoch = divmod(self.completed_steps, self.updates_per_epoch)
        self._batches_to_skip = updates_into_epoch * self.gradient_accumulation_steps
        self.micro_step = self.epoch * self.num_batches + self._batches_to_skip

    def _resume_stream(self, checkpoint: Path, state: dict[str, Any]) -> None:
        """Put this process's stream at the position the checkpoint stored for it."""
        if "stream" not in state:
            raise ValueError(
                f"--resume_from_checkpoint: {checkpoint} holds no stream position (it was written by a run without "
                "--streaming); resume it without --streaming."
            )
        positions = state["stream"]["positions"]
        if len(positions) != self.accelerator.num_processes:
            raise ValueError(
                f"--resume_from_checkpoint: {checkpoint} holds the stream positions of {len(positions)} processes, "
                f"got {self.accelerator.num_processes}; a stream resumes on the same number of processes."
            )
        self.stream.load_state_dict(positions[self.accelerator.process_index])
        self._stream_position = self.stream.state_dict()
        self.epoch = self._stream_position["epoch"]
        self.micro_step = self._stream_micro_steps = state["stream"]["micro_step"]

    def _changed_flags(self, checkpoint: Path, state: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """The changes of ``resume_flags`` since ``checkpoint``; raises unless ``--allow_changed_flags``."""
        if "flags" not in state:
            logger.warning(
                "%s records no flags (an older version wrote it): changed flags cannot be checked", checkpoint
            )
            return {}
        old = {**state["flags"], NUM_PROCESSES: state.get(NUM_PROCESSES)}
        new = {**self._flags, NUM_PROCESSES: self.accelerator.num_processes}
        changes = changed_flags(old, new, self.resume_flags)
        if changes and not self.args.allow_changed_flags:
            raise ValueError(
                f"--resume_from_checkpoint: {checkpoint} was written with other values of flags that change the "
                f"optimisation or the data order: {describe_changes(changes)}. Pass the earlier values to continue "
                "the run as it was, or --allow_changed_flags to continue it with the new ones."
            )
        if changes:
            self.accelerator.print(f"--allow_changed_flags: continuing with {describe_changes(changes)}")
        return changes

    def _restore_run_record(self, state: dict[str, Any]) -> None:
        self._earlier_segments = list(state.get(RUN_HISTORY_KEY, []))
        self._earlier_seconds = state.get("train_seconds", 0.0)
        self.first_train_loss = state.get("first_train_loss")
        self.last_train_loss = state.get("train_loss")

    # ---- the loop

    @property
    def finished(self) -> bool:
        return self.completed_steps >= self.max_train_steps or self._out_of_time

    def __iter__(self) -> Iterator[Any]:
        self._signals.install()
        try:
            if self.stream is not None:
                yield from self._stream_batches()
                return
            while self.epoch < self.num_epochs and not self.finished:
                yield from self._epoch_batches()
                if self.finished:
                    return
                self.epoch += 1
        finally:
            self._signals.restore()

    def _epoch_batches(self) -> Iterator[Any]:
        """The rest of the current epoch's batches, each with the global generators seeded for it."""
        self.train_dataloader.set_epoch(self.epoch)
        for dataset in self.epoch_datasets:
            dataset.set_epoch(self.epoch)
        batches = self.train_dataloader
        if self._batches_to_skip:
            batches = self.accelerator.skip_first_batches(self.train_dataloader, self._batches_to_skip)
            self._batches_to_skip = 0
        for batch in batches:
            seed_global_generators(self._step_seed(GLOBAL_GENERATORS_STREAM))
            yield batch
            self.micro_step += 1
            if self.finished:
                return

    def _stream_batches(self) -> Iterator[Any]:
        """Epochs of the stream until ``max_train_steps``; an epoch ends on every process when one runs dry."""
        empty_epochs = 0
        while not self.finished:
            self.stream.set_epoch(self.epoch)
            for dataset in self.epoch_datasets:
                dataset.set_epoch(self.epoch)
            batches = self.stream.iter_with_positions()
            yielded = False
            while True:
                item = next(batches, None)
                if not self._every_process_has(item is not None):
                    break
                batch, self._stream_position = item
                self._stream_micro_steps = self.micro_step + 1
                yielded = True
                seed_global_generators(self._step_seed(GLOBAL_GENERATORS_STREAM))
                yield send_to_device(batch, self.accelerator.device)
                self.micro_step += 1
                if self.finished:
                    return
            batches.close()
            empty_epochs = 0 if yielded else empty_epochs + 1
            if empty_epochs > 1:
                raise ValueError(f"The training stream gave no batch in epochs {self.epoch - 1} and {self.epoch}.")
            self.epoch += 1

    def _every_process_has(self, has_batch: bool) -> bool:
        if self.accelerator.num_processes == 1:
            return has_batch
        flag = torch.tensor(int(has_batch), device=self.accelerator.device)
        return self.accelerator.reduce(flag, "sum").item() == self.accelerator.num_processes

    def step_generator(self, device: torch.device | str | None = None) -> torch.Generator:
        """A generator for the random draws of the current batch (noise, masks...), on ``device`` (default: the
        accelerator's), seeded from ``(seed, process_index, micro_step)``: the same in a straight and a resumed run,
        different on every process and batch."""
        generator = torch.Generator(device=device if device is not None else self.accelerator.device)
        return generator.manual_seed(self._step_seed())

    def _step_seed(self, *stream: int) -> int:
        return derive_seed(self.args.seed, self.accelerator.process_index, self.micro_step, *stream)

    def update_done(self, loss: float | None = None) -> None:
        """Count one optimizer update whose loss was ``loss`` (recorded for :meth:`build_results`); checkpoint on
        the ``--checkpointing_steps`` cadence; stop on a preemption signal; check the time budget.

        Raises:
            RunPreempted: a process received SIGTERM or SIGUSR1; the checkpoint of this update is written.
        """
        self.completed_steps += 1
        if loss is not None:
            self.last_train_loss = float(loss)
            if self.first_train_loss is None:
                self.first_train_loss = self.last_train_loss
        if self.args.checkpointing_steps and self.completed_steps % self.args.checkpointing_steps == 0:
            self.save_checkpoint()
        if self._any_process_signalled():
            self._stop_preempted()
        if self.args.max_train_seconds is not None:
            elapsed = torch.tensor(time.monotonic() - self._started, device=self.accelerator.device)
            self._out_of_time = broadcast(elapsed).item() > self.args.max_train_seconds

    @property
    def preemption_signal(self) -> str | None:
        """The name of the preemption signal this process received while iterating (``"SIGTERM"``...), if any."""
        return self._signals.received

    def _any_process_signalled(self) -> bool:
        """Whether any process received a preemption signal (all processes agree, at the same update)."""
        signalled = self._signals.received is not None
        if self.accelerator.num_processes == 1:
            return signalled
        count = self.accelerator.reduce(torch.tensor(int(signalled), device=self.accelerator.device), "sum")
        return count.item() > 0

    def _stop_preempted(self) -> None:
        signal_name = self._signals.received or "a preemption signal on another process"
        self.save_final_checkpoint()
        self._signals.restore()
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            release_run_lock(self.output_dir)
        self.accelerator.end_training()
        preempted = RunPreempted(signal_name, self.completed_steps)
        self.accelerator.print(str(preempted))
        raise preempted

    def save_checkpoint(self) -> Path:
        extra_state = {"epoch": self.epoch, **self._run_record()}
        if self.stream is not None:
            # The position after the last batch handed out (inside the loop body or after the loop alike).
            extra_state["stream"] = {
                "micro_step": self._stream_micro_steps,
                "positions": gather_object([self._stream_position]),
            }
        path = save_checkpoint(
            self.accelerator, self.output_dir, self.completed_steps, self.args.checkpoints_total_limit,
            extra_state, self.stateful,
        )  # fmt: skip
        self._last_checkpoint_step = self.completed_steps
        return path

    def _run_record(self) -> dict[str, Any]:
        """What a checkpoint keeps of the run besides the training state: flags, history, losses, time."""
        return {
            "flags": self._flags,
            NUM_PROCESSES: self.accelerator.num_processes,
            RUN_HISTORY_KEY: self._history(),
            "first_train_loss": self.first_train_loss,
            "train_loss": self.last_train_loss,
            "train_seconds": self.train_seconds,
        }

    def _history(self) -> list[dict[str, Any]]:
        """The run's segments: the earlier launches' and this one's, if it made an update."""
        if self.completed_steps == self._segment_start_step:
            return list(self._earlier_segments)
        segment = {
            "start_step": self._segment_start_step,
            "end_step": self.completed_steps,
            NUM_PROCESSES: self.accelerator.num_processes,
            "flags": self._flags,
        }
        return [*self._earlier_segments, segment]

    @property
    def train_seconds(self) -> float:
        """Seconds of training of the run: this launch's and, up to their last checkpoint, the earlier ones'."""
        return self._earlier_seconds + time.monotonic() - self._started

    # ---- the end

    def save_final_checkpoint(self) -> None:
        """Checkpoint the last update unless the cadence just did; call it right after the loop, before the
        trained weights are replaced (by an EMA...), on every process."""
        if self._last_checkpoint_step != self.completed_steps:
            self.save_checkpoint()

    def build_results(self, eval_metrics: Mapping[str, Any] = (), **extra: Any) -> dict[str, Any]:
        """The end-of-run results, one schema for every script (what ``all_results.json`` and the model card hold).

        Keys, in order: ``train_steps`` (updates done, resumed ones included), ``train_loss`` (loss of the run's
        last update, ``None`` without one), ``first_train_loss`` (of its first update), ``train_seconds`` (see
        :attr:`train_seconds`, 2 decimals), every entry of ``eval_metrics`` under an ``eval_``-prefixed key, then
        ``extra`` (script-specific values such as ``latent_scaling_factor``).
        """
        results: dict[str, Any] = {
            "train_steps": self.completed_steps,
            "train_loss": self.last_train_loss,
            "first_train_loss": self.first_train_loss,
            "train_seconds": round(self.train_seconds, 2),
        }
        for name, value in dict(eval_metrics).items():
            results[name if name.startswith("eval_") else f"eval_{name}"] = value
        results.update(extra)
        return results

    def finish(self, results: dict[str, Any], push=None) -> None:
        """End of the run, on every process: on the main process ``all_results.json`` and ``training_config.json``
        (redacted, with the run's segments under ``run_history``) in ``--output_dir``, the run lock released and,
        with ``--push_to_hub``, the upload of ``push`` (a model, pipeline or folder; default ``--output_dir``); then
        the trackers are closed. A resumed run that made no update (it was finished) keeps the files it has."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            if self._resumed_a_finished_run():
                self.accelerator.print(
                    f"{self.output_dir} holds a finished run of {self.completed_steps} updates: its "
                    f"{RESULTS_FILE} and {TRAINING_CONFIG_FILE} are kept as they are."
                )
            else:
                write_json(self.output_dir / RESULTS_FILE, results)
                write_json(self.output_dir / TRAINING_CONFIG_FILE, self.training_config())
            release_run_lock(self.output_dir)
            if self.args.push_to_hub:
                from hf_compact.hub import push_to_hub

                push_to_hub(
                    push if push is not None else self.output_dir,
                    self.args.hub_model_id or self.output_dir.resolve().name,
                    training_config=self.public_config(),
                    metrics=results,
                    token=self.args.hub_token,
                )
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()

    def training_config(self) -> dict[str, Any]:
        """``training_config.json``: this launch's flags (redacted) and, under ``run_history``, every segment of the
        run: its steps, number of processes and the flags in which it differed from these."""
        return {**self.public_config(), RUN_HISTORY_KEY: public_history(self._history(), self._flags)}

    def _resumed_a_finished_run(self) -> bool:
        return (
            self._segment_start_step > 0
            and self.completed_steps == self._segment_start_step
            and (self.output_dir / RESULTS_FILE).is_file()
        )
