"""One rank of tests/training/test_streaming_resume.py under ``torchrun --nproc_per_node 2``: three runs of a small
classifier on a stream of local parquet shards (``StreamingDataLoader`` + ``TrainingRun``) in one launch.

Usage: ``torchrun ... streaming_resume.py FOLDER SHARD...``:

1. ``FOLDER/straight``: the run, uninterrupted;
2. ``FOLDER/resumed``: the same run, interrupted right after update ``INTERRUPT_AT`` (its checkpoint written, the
   loop left as a killed job would leave it), then resumed with ``--resume_from_checkpoint latest``.

Each run writes ``RUN/batches-rank{R}.json`` (the epoch and example indices of every batch this rank trained on, over
all its launches) and ``RUN/weights-rank{R}.pt`` (the final weights).
"""

import argparse
import json
import os
import sys
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.distributed
from accelerate.state import AcceleratorState, PartialState

from hf_compact.data.streaming import StreamingDataLoader, load_streaming_dataset
from hf_compact.training_utils import build_accelerator

from run_engine import TrainingRun, add_run_arguments, prepare_output_dir
from run_engine.run_lock import release_run_lock

folder, shards = Path(sys.argv[1]), sys.argv[2:]
rank = int(os.environ["RANK"])
INTERRUPT_AT = 5
# datasets waits 5 s after a shuffled stream's reader threads end (a pyarrow work-around); not needed here.
datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN = 0
# The end of a run destroys the process group; the runs of this launch share it, destroyed at the end.
AcceleratorState.destroy_process_group = PartialState.destroy_process_group = lambda self, group=None: None


def to_item(example: dict) -> dict:
    """A digit as a flat vector, with a random brightness (an augmentation drawn from the global generator)."""
    pixels = torch.from_numpy(np.asarray(example["image"], dtype=np.float32) / 255.0).flatten()
    return {"pixels": pixels * (0.5 + torch.rand(())), "label": example["label"], "index": example["index"]}


def train(output_dir: Path, *flags: str, interrupt_at: int | None = None) -> None:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(
        ["--output_dir", str(output_dir), "--max_train_steps", "12", "--gradient_accumulation_steps", "2",
         "--checkpointing_steps", str(INTERRUPT_AT), "--seed", "3", *flags]
    )  # fmt: skip
    accelerator = build_accelerator(args, output_dir)
    prepare_output_dir(args, accelerator)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(192, 32), torch.nn.Dropout(0.2), torch.nn.Linear(32, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    stream = StreamingDataLoader(
        load_streaming_dataset(data_files=shards), to_item, batch_size=8, rank=accelerator.process_index,
        world_size=accelerator.num_processes, seed=args.seed, shuffle_buffer_size=16, num_workers=2,
    )  # fmt: skip
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, stream)
    assert train_dataloader is stream, "accelerator.prepare must leave the stream to its own sharding"
    run = TrainingRun(accelerator, args, train_dataloader, args.max_train_steps)
    run.resume()
    record = output_dir / f"batches-rank{rank}.json"
    batches = json.loads(record.read_text()) if record.is_file() else []
    for batch in run:
        batches.append({"epoch": run.epoch, "indices": batch["index"].tolist()})
        with accelerator.accumulate(model):
            loss = torch.nn.functional.cross_entropy(model(batch["pixels"]), batch["label"])
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        if accelerator.sync_gradients:
            run.update_done(loss.item())
            if run.completed_steps == interrupt_at:
                record.write_text(json.dumps(batches))
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    release_run_lock(output_dir)  # as the kernel would for a killed job
                return
    run.save_final_checkpoint()
    record.write_text(json.dumps(batches))
    torch.save(accelerator.unwrap_model(model).state_dict(), output_dir / f"weights-rank{rank}.pt")
    run.finish(run.build_results())


train(folder / "straight")
train(folder / "resumed", interrupt_at=INTERRUPT_AT)
train(folder / "resumed", "--resume_from_checkpoint", "latest")
torch.distributed.destroy_process_group()
