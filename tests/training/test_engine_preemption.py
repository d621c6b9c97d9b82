"""Preemption (issue 27): SIGTERM / SIGUSR1 end a run at the next update with a checkpoint and exit status 143, the
run folder is locked while a job runs, and ``--resume_from_checkpoint latest`` then ends with the weights of an
uninterrupted run. Two processes under torchrun, which also shows that every process stops at the same update."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from launch import REPO_ROOT
from run_engine_checks import tiny_run
from safetensors.torch import load_file

from run_engine import PREEMPTED_EXIT_CODE, RunFolderInUseError, RunPreempted, add_run_arguments, prepare_output_dir

WORKERS = Path(__file__).parents[1] / "distributed_workers"
RUN = [
    "--preset", "cct_2_3x2_32", "--image_size", "16",
    "--config_overrides", "hidden_size=32,intermediate_size=64,num_hidden_layers=1,conv_intermediate_channels=16",
    "--dataset_name", "digits", "--max_train_samples", "96", "--max_eval_samples", "16",
    "--per_device_train_batch_size", "16", "--max_train_steps", "6", "--warmup_epochs", "0", "--cooldown_epochs", "0",
    "--learning_rate", "3e-3", "--use_ema", "--ema_decay", "0.9", "--checkpointing_steps", "100",
]  # fmt: skip


def assert_same_weights(expected_file: Path, actual_file: Path) -> None:
    expected, actual = load_file(expected_file), load_file(actual_file)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_sigusr1_finishes_the_update_checkpoints_and_exits_with_the_requeue_status(tmp_path):
    def signal_at_update_2(run):
        if run.completed_steps == 1:  # update 2 is under way
            os.kill(os.getpid(), signal.SIGUSR1)

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGUSR1)}
    with pytest.raises(RunPreempted) as raised:
        tiny_run(tmp_path, on_step=signal_at_update_2)
    assert isinstance(raised.value, SystemExit) and raised.value.code == PREEMPTED_EXIT_CODE == 143
    assert str(raised.value).startswith("SIGUSR1: stopped after update 2 with a checkpoint")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2"]  # no staging folder, no lock
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    assert tiny_run(tmp_path, "--resume_from_checkpoint", "latest") != []


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_update_and_the_resumed_run_ends_like_a_straight_one(tmp_path):
    """torchrun, 2 gloo processes. After update 2, rank 0 waits; meanwhile a second job on its folder is refused,
    naming rank 0 (one lock per run). SIGTERM from outside reaches rank 0 only; both ranks finish update 3, write
    one checkpoint and leave with status 143; resumed with ``latest``, the run ends with the weights of an
    uninterrupted 2-process run, and ``training_config.json`` lists both segments."""
    environment = {
        **os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "training")]),
    }  # fmt: skip
    launch = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(WORKERS / "preemption_two_processes.py"), str(tmp_path), *RUN],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        rank_0 = wait_for_file(tmp_path / "paused.json", launch)
        with pytest.raises(RunFolderInUseError, match=f"preempted.* in use by another job .*pid {rank_0['pid']}"):
            prepare_output_dir(run_flags(tmp_path / "preempted"), Accelerator(cpu=True))
        os.kill(rank_0["pid"], signal.SIGTERM)
        _, stderr = launch.communicate(timeout=400)
    finally:
        launch.kill()
    assert launch.returncode == 0, stderr[-3000:]
    records = [json.loads((tmp_path / f"preempted-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert records[0] == {"preempted": True, "signal": "SIGTERM", "step": 3, "code": PREEMPTED_EXIT_CODE}
    assert records[1] == {**records[0], "signal": "a preemption signal on another process"}
    assert PREEMPTED_EXIT_CODE == 143
    history = json.loads((tmp_path / "preempted" / "training_config.json").read_text())["run_history"]
    assert [segment["steps"] for segment in history] == [[0, 3], [3, 6]]
    assert all(segment["num_processes"] == 2 for segment in history)
    for name in ("model.safetensors", "checkpoint-6/ema.safetensors"):
        assert_same_weights(tmp_path / "straight" / name, tmp_path / "preempted" / name)


def wait_for_file(path: Path, process: subprocess.Popen) -> dict:
    """The JSON that ``process`` writes to ``path`` (it may take the process a while to get there)."""
    while not path.is_file():
        if process.poll() is not None:
            pytest.fail(f"the launch ended with status {process.returncode} first: {process.stderr.read()[-3000:]}")
        time.sleep(0.05)
    return json.loads(path.read_text())


def run_flags(output_dir: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(["--output_dir", str(output_dir), "--resume_from_checkpoint", "latest"])
