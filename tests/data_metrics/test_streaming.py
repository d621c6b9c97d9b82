"""Streaming training data (hf_compact.data.streaming): local parquet / webdataset shards, split across processes,
shuffled per (seed, epoch), resumed exactly at a stored position with a shuffle buffer and DataLoader workers."""

import argparse
import io
import tarfile

import datasets
import numpy as np
import pytest
import torch

from hf_compact.data import load_digits_dataset
from hf_compact.data.streaming import (
    StreamingDataLoader,
    add_streaming_arguments,
    check_streaming_arguments,
    load_streaming_dataset,
    load_streaming_evaluation_dataset,
    resolve_data_files,
)

SHARD_SIZES = (24, 24, 24, 20)


@pytest.fixture(autouse=True)
def no_sleep_after_shuffled_streams(monkeypatch):
    # datasets waits 5 s after a shuffled stream's reader threads end (a pyarrow work-around); not needed here.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


def write_parquet_shards(folder, sizes=SHARD_SIZES) -> list[str]:
    """Digits (8x8) with an ``index`` column, cut into parquet shards of ``sizes`` examples."""
    digits = load_digits_dataset(image_size=8)["train"].select(range(sum(sizes)))
    digits = digits.add_column("index", list(range(len(digits))))
    files, start = [], 0
    for number, size in enumerate(sizes):
        files.append(str(folder / f"digits-{number:02d}.parquet"))
        digits.select(range(start, start + size)).to_parquet(files[-1])
        start += size
    return files


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_parquet_shards(tmp_path_factory.mktemp("shards"))


def to_item(example: dict) -> dict:
    """The example's index and a random draw of the global generator (an augmentation's)."""
    assert example["image"].size == (8, 8)  # decoded before the transform
    return {"index": example["index"], "draw": torch.rand(())}


def make_loader(shards, **kwargs) -> StreamingDataLoader:
    settings = {"batch_size": 4, "seed": 7, "shuffle_buffer_size": 8, **kwargs}
    return StreamingDataLoader(load_streaming_dataset(data_files=shards), to_item, **settings)


def epoch_indices(loader: StreamingDataLoader, epoch: int = 0) -> list[int]:
    loader.set_epoch(epoch)
    return [index for batch in loader for index in batch["index"].tolist()]


def test_processes_read_disjoint_examples_that_cover_the_stream(shards):
    for world_size in (2, 3):  # whole shards per process; every third example of every shard
        per_rank = [epoch_indices(make_loader(shards, rank=rank, world_size=world_size)) for rank in range(world_size)]
        seen = [index for indices in per_rank for index in indices]
        assert sorted(seen) == list(range(sum(SHARD_SIZES)))
    unshuffled = make_loader(shards, rank=0, world_size=3, shuffle_buffer_size=0)
    assert epoch_indices(unshuffled) == list(range(0, sum(SHARD_SIZES), 3))


def test_shuffle_depends_on_seed_and_epoch_only(shards):
    order = epoch_indices(make_loader(shards))
    assert epoch_indices(make_loader(shards)) == order
    assert sorted(order) == list(range(sum(SHARD_SIZES))) and order != sorted(order)
    assert epoch_indices(make_loader(shards), epoch=1) != order
    assert epoch_indices(make_loader(shards, seed=8)) != order
    assert epoch_indices(make_loader(shards, shuffle_buffer_size=0)) == list(range(sum(SHARD_SIZES)))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_loaded_position_continues_with_the_same_batches(shards, num_workers):
    loader = make_loader(shards, rank=1, world_size=2, num_workers=num_workers)
    loader.set_epoch(1)
    straight = list(loader.iter_with_positions())
    assert len(straight) == 11  # (24 + 20) / 4 examples
    for stop in (3, 7):  # mid-epoch, shuffle buffers full
        resumed = make_loader(shards, rank=1, world_size=2, num_workers=num_workers)
        resumed.load_state_dict(straight[stop][1])
        rest = list(resumed)
        assert len(rest) == len(straight) - stop - 1
        for (expected, _), batch in zip(straight[stop + 1 :], rest):
            assert torch.equal(batch["index"], expected["index"])
            assert torch.equal(batch["draw"], expected["draw"])  # per-example augmentation draws repeat too
    assert straight[-1][1]["epoch"] == 1 and resumed.state_dict()["examples_per_worker"] == [0] * max(num_workers, 1)


def test_a_position_of_another_configuration_is_refused(shards):
    loader = make_loader(shards, rank=0, world_size=2)
    _, position = next(loader.iter_with_positions())
    with pytest.raises(ValueError, match="shuffle_buffer_size 8 -> 16"):
        make_loader(shards, rank=0, world_size=2, shuffle_buffer_size=16).load_state_dict(position)
    with pytest.raises(ValueError, match="world_size 2 -> 1"):
        make_loader(shards).load_state_dict(position)


def test_data_files_are_literal_paths_folders_or_globs(tmp_path):
    folder = tmp_path / "shards [v1]"
    folder.mkdir()
    files = write_parquet_shards(folder, sizes=(5, 3))
    (folder / "notes.txt").write_text("not a shard")
    assert resolve_data_files([files[1]]) == [files[1]]  # "[v1]" taken literally
    assert resolve_data_files([str(folder)]) == files
    assert resolve_data_files([str(tmp_path / "*" / "digits-*.parquet")]) == files
    stream = load_streaming_dataset(data_files=[files[1]])
    assert [example["index"] for example in stream] == [5, 6, 7]
    held_out = load_streaming_evaluation_dataset(validation_data_files=[str(folder)], num_examples=6)
    assert held_out["index"] == [0, 1, 2, 3, 4, 5] and held_out[0]["image"].size == (8, 8)
    with pytest.raises(ValueError, match="--data_files: .*names no .tar or .parquet"):
        resolve_data_files([str(tmp_path / "*.tar")])
    with pytest.raises(ValueError, match="--data_files: .* is not a file"):
        resolve_data_files([str(tmp_path / "missing.parquet")])
    (tmp_path / "mixed.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="one kind"):
        resolve_data_files([files[0], str(tmp_path / "mixed.tar")])


def test_webdataset_shards_stream_decoded_images_and_labels(tmp_path):
    digits = load_digits_dataset(image_size=8)["train"]
    files = []
    for shard in range(2):
        files.append(str(tmp_path / f"digits-{shard}.tar"))
        with tarfile.open(files[-1], "w") as tar:
            for index in range(shard * 6, shard * 6 + 6):
                png = io.BytesIO()
                digits[index]["image"].save(png, format="PNG")
                for suffix, data in (("png", png.getvalue()), ("cls", str(digits[index]["label"]).encode())):
                    info = tarfile.TarInfo(f"{index:05d}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    stream = load_streaming_dataset(data_files=[str(tmp_path / "digits-*.tar")])

    def to_pixels(example):
        return {"pixels": torch.from_numpy(np.array(example["png"])), "label": example["cls"]}

    loader = StreamingDataLoader(stream, to_pixels, batch_size=3, rank=1, world_size=2)
    batches = list(loader)
    assert [batch["pixels"].shape for batch in batches] == [(3, 8, 8, 3)] * 2
    assert batches[0]["label"].tolist() == digits["label"][6:9]


def test_streaming_flags_are_checked():
    parser = argparse.ArgumentParser()
    add_streaming_arguments(parser)
    parser.add_argument("--dataset_name")
    parser.add_argument("--max_train_steps", type=int)
    local = ["--streaming", "--data_files", "a.tar", "--max_train_steps", "5"]
    check_streaming_arguments(parser.parse_args([*local, "--validation_data_files", "b.tar"]))
    with pytest.raises(ValueError, match="--validation_data_files: expected held-out shards"):
        check_streaming_arguments(parser.parse_args(local))
    with pytest.raises(ValueError, match="--max_train_steps"):
        check_streaming_arguments(parser.parse_args(["--streaming", "--dataset_name", "ILSVRC/imagenet-1k"]))
    with pytest.raises(ValueError, match="--streaming: expected exactly one"):
        check_streaming_arguments(parser.parse_args(["--streaming", "--max_train_steps", "5"]))
    with pytest.raises(ValueError, match="--data_files: only read with --streaming"):
        check_streaming_arguments(parser.parse_args(["--data_files", "a.tar"]))
