"""One rank of tests/training/test_engine_preemption.py under ``torchrun --nproc_per_node 2``: three runs of
``training/train_cct.py`` in one launch.

Usage: ``torchrun ... preemption_two_processes.py FOLDER <train_cct flags>``:

1. ``FOLDER/straight``: the run, uninterrupted;
2. ``FOLDER/preempted``: after update 2, rank 0 writes ``FOLDER/paused.json`` (its pid) and waits until the test
   sends it (only it) SIGTERM; both ranks must stop after update 3 with a checkpoint; each writes
   ``FOLDER/preempted-rank{R}.json`` (signal, step, exit status);
3. the same folder resumed with ``--resume_from_checkpoint latest``.
"""

import json
import os
import sys
import time
from pathlib import Path

import torch.distributed
from accelerate.state import AcceleratorState, PartialState
from launch import load_training_script

from run_engine import RunPreempted, TrainingRun

folder, argv = Path(sys.argv[1]), sys.argv[2:]
rank = int(os.environ["RANK"])
train_cct = load_training_script("train_cct")
update_done = TrainingRun.update_done


# The end of a run destroys the process group; the three runs of this launch share it, destroyed at the end.
AcceleratorState.destroy_process_group = PartialState.destroy_process_group = lambda self, group=None: None


def train(*flags: str) -> None:
    train_cct.main([*argv, *flags])


def update_done_then_pause_rank_0(run, *args, **kwargs):
    update_done(run, *args, **kwargs)
    if run.completed_steps == 2 and rank == 0:
        (folder / "paused.json").write_text(json.dumps({"pid": os.getpid()}))
        while run.preemption_signal is None:  # the test's signal, whenever it comes
            time.sleep(0.01)


train("--output_dir", str(folder / "straight"))
TrainingRun.update_done = update_done_then_pause_rank_0
try:
    train("--output_dir", str(folder / "preempted"))
    record = {"preempted": False}
except RunPreempted as preempted:
    record = {"preempted": True, "signal": preempted.signal_name, "step": preempted.step, "code": preempted.code}
TrainingRun.update_done = update_done
(folder / f"preempted-rank{rank}.json").write_text(json.dumps(record))
train("--output_dir", str(folder / "preempted"), "--resume_from_checkpoint", "latest")
torch.distributed.destroy_process_group()
