"""A stream resumed at its position (issue 29): two processes under torchrun train on local parquet shards split by
``split_dataset_by_node``, with a shuffle buffer, two DataLoader workers each and gradient accumulation; a run
interrupted at update 5 (mid-epoch, an update spanning an epoch end before it) and resumed from its checkpoint
trains on the same batches and ends with the same weights as an uninterrupted run; ``train_vitok.py --streaming``
and ``train_cct.py --streaming`` over local shards, preempted mid-epoch and resumed, end like straight runs."""

import json
import os
import signal
from pathlib import Path

import datasets
import pytest
import torch
from launch import load_training_script, run_two_processes
from test_train_cct import TINY_MODEL
from test_train_vitok import TINY_IMAGE_RUN

from hf_compact.data import load_digits_dataset
from hf_compact.utils.run_files import STATE_FILE

from run_engine import RunPreempted, TrainingRun

WORKER = Path(__file__).parents[1] / "distributed_workers" / "streaming_resume.py"
# Whatever the shard order of an epoch, one process gets the 28-example shard: its worker runs dry after 4 batches
# of 8 and ends the epoch on both processes at 9 batches.
SHARD_SIZES = (40, 40, 40, 28)


def write_parquet_shards(folder: Path, sizes: tuple[int, ...]) -> list[str]:
    """Digits (8x8) with an ``index`` column, cut into parquet shards of ``sizes`` examples."""
    digits = load_digits_dataset(image_size=8)["train"].select(range(sum(sizes)))
    digits = digits.add_column("index", list(range(len(digits))))
    starts = [sum(sizes[:number]) for number in range(len(sizes))]
    files = [str(folder / f"digits-{number:02d}.parquet") for number in range(len(sizes))]
    for file, start, size in zip(files, starts, sizes):
        digits.select(range(start, start + size)).to_parquet(file)
    return files


def test_interrupted_and_resumed_stream_repeats_the_straight_run(tmp_path):
    shards = write_parquet_shards(tmp_path, sizes=SHARD_SIZES)
    run_two_processes(WORKER, str(tmp_path), *shards)

    batches = {
        (run, rank): json.loads((tmp_path / run / f"batches-rank{rank}.json").read_text())
        for run in ("straight", "resumed")
        for rank in (0, 1)
    }
    straight_weights = torch.load(tmp_path / "straight" / "weights-rank0.pt")
    for run, rank in (("straight", 1), ("resumed", 0), ("resumed", 1)):
        for name, tensor in torch.load(tmp_path / run / f"weights-rank{rank}.pt").items():
            torch.testing.assert_close(tensor, straight_weights[name], rtol=0, atol=0, msg=f"{run} {rank} {name}")
    for rank in (0, 1):
        assert len(batches["straight", rank]) == 24  # 12 updates of 2 batches
        assert batches["resumed", rank] == batches["straight", rank]
    epochs = [[[b["indices"] for b in batches["straight", rank] if b["epoch"] == epoch] for rank in (0, 1)]
              for epoch in range(3)]  # fmt: skip
    assert [len(epoch[0]) for epoch in epochs] == [len(epoch[1]) for epoch in epochs] == [9, 9, 6]
    for epoch in epochs[:2]:
        examples = [{index for batch in epoch[rank] for index in batch} for rank in (0, 1)]
        assert not examples[0] & examples[1]  # each process reads its own shards
        assert {len(examples[0]), len(examples[1])} == {68, 72}  # 40 + 28 in 9 batches; 72 of 80
    assert epochs[1][0] != epochs[0][0]  # reshuffled in the next epoch
    checkpoint = json.loads((tmp_path / "resumed" / "checkpoint-5" / STATE_FILE).read_text())
    assert checkpoint["epoch"] == 1 and checkpoint["stream"]["micro_step"] == 10
    assert [position["configuration"]["rank"] for position in checkpoint["stream"]["positions"]] == [0, 1]


def run_preempted_and_resumed(script, arguments: list[str], output_dir: Path, monkeypatch) -> dict:
    """``script.main`` preempted (SIGTERM) after update 6, then resumed with ``--resume_from_checkpoint latest``."""
    update_done = TrainingRun.update_done

    def update_done_then_sigterm(run, *args, **kwargs):
        update_done(run, *args, **kwargs)
        if run.completed_steps == 6:  # the engine checkpoints and stops at the next update: mid-epoch
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(TrainingRun, "update_done", update_done_then_sigterm)
    with pytest.raises(RunPreempted):
        script.main([*arguments, "--output_dir", str(output_dir)])
    monkeypatch.setattr(TrainingRun, "update_done", update_done)
    return script.main([*arguments, "--output_dir", str(output_dir), "--resume_from_checkpoint", "latest"])


@pytest.mark.parametrize("script", ["train_vitok", "train_cct"])
def test_a_script_streams_local_shards_and_a_preempted_run_resumes_exactly(script, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)  # see streaming_resume.py
    (tmp_path / "train").mkdir(), (tmp_path / "validation").mkdir()
    write_parquet_shards(tmp_path / "train", sizes=(40, 40))
    validation = write_parquet_shards(tmp_path / "validation", sizes=(16,))
    stream = [
        "--streaming", "--data_files", str(tmp_path / "train"), "--validation_data_files", *validation,
        "--shuffle_buffer_size", "16", "--dataloader_num_workers", "2", "--max_train_steps", "12",
    ]  # fmt: skip
    if script == "train_vitok":
        arguments = [*(flag for flag in TINY_IMAGE_RUN if flag not in ("--dataset_name", "digits")), *stream]
        compared = ("train_loss", "first_train_loss", "eval_psnr", "eval_ssim")
    else:
        arguments = [*TINY_MODEL, *stream, "--per_device_train_batch_size", "8", "--warmup_epochs", "1"]
        compared = ("train_loss", "first_train_loss", "eval_accuracy", "eval_top_5_accuracy")
    module = load_training_script(script)
    straight = module.main([*arguments, "--output_dir", str(tmp_path / "straight")])
    resumed = run_preempted_and_resumed(module, arguments, tmp_path / "resumed", monkeypatch)
    assert straight["train_steps"] == resumed["train_steps"] == 12
    for name in compared:
        assert resumed[name] == straight[name], name
