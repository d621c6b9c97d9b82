"""Preemption: SIGTERM or SIGUSR1 ends a run at the next optimizer update, with a checkpoint and a requeue status.

SLURM (``--signal``, ``scancel``, the end of the time limit), Kubernetes and spot instances send SIGTERM, and SLURM
can send SIGUSR1 ahead of time, some seconds or minutes before they kill a job. While the batches of a
:class:`~run_engine.TrainingRun` are iterated, either signal only sets a flag; at the end of the
current update all processes agree that one of them was signalled, write a checkpoint and leave with
:class:`RunPreempted`, i.e. exit status ``PREEMPTED_EXIT_CODE`` = 143 (128 + SIGTERM, what a shell reports for a
job ended by SIGTERM, which SLURM job scripts, Kubernetes ``podFailurePolicy`` and AWS Batch retry strategies match
to requeue a job). Relaunched with ``--resume_from_checkpoint latest``, the run continues exactly.

A SLURM batch script that requeues itself::

    #SBATCH --signal=B:USR1@120 --requeue
    srun python training/train_cct.py ... --resume_from_checkpoint latest
    [ $? -eq 143 ] && scontrol requeue "$SLURM_JOB_ID"
"""

from __future__ import annotations

import signal
import threading

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM


class RunPreempted(SystemExit):
    """The run stopped on a preemption signal after checkpointing; exits the interpreter with status 143."""

    def __init__(self, signal_name: str, step: int):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.signal_name = signal_name
        self.step = step

    def __str__(self) -> str:
        return (
            f"{self.signal_name}: stopped after update {self.step} with a checkpoint; relaunch with "
            f"--resume_from_checkpoint latest to continue (exit status {PREEMPTED_EXIT_CODE})."
        )


class PreemptionSignals:
    """Records the first preemption signal received between :meth:`install` and :meth:`restore`."""

    def __init__(self):
        self.received: str | None = None
        self._previous_handlers: dict[int, object] = {}

    def install(self) -> None:
        """Catch the preemption signals (main thread only: elsewhere Python cannot set handlers)."""
        if self._previous_handlers or threading.current_thread() is not threading.main_thread():
            return
        self._previous_handlers = {signum: signal.signal(signum, self._record) for signum in PREEMPTION_SIGNALS}

    def restore(self) -> None:
        """Put the handlers back as they were before :meth:`install`."""
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _record(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
