"""``train_dit.py --streaming``: the latent cache encoded from local parquet / webdataset shards equals the one the
map-style path encodes from the same rows, is reused while the shards are unchanged, and is the same when two
processes encode it."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import datasets
import pytest
import torch
from datasets import DatasetDict
from launch import TRAINING_DIR, load_training_script, run_two_processes
from tiny_models import tiny_vitok

from hf_compact import AutoencoderViTok
from hf_compact.data import load_digits_dataset
from hf_compact.data.latent_cache import (
    LatentCacheDataset,
    build_latent_cache,
    build_latent_cache_from_stream,
    stream_cache_path,
)
from hf_compact.data.streaming import describe_stream_source, load_streaming_dataset

train_dit = load_training_script("train_dit")

SHARD_SIZE = 8  # rows per parquet shard, a multiple of the encoding batch: every split of the shards encodes the
NUM_SHARDS = 3  # same batches, so the latents are equal bit for bit


@pytest.fixture(autouse=True)
def no_sleep_after_streams(monkeypatch):
    # datasets waits 5 s after a stream's reader threads end (a pyarrow work-around); not needed here.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


def digits(image_size: int = 20):
    return load_digits_dataset(image_size=image_size)["train"].select(range(SHARD_SIZE * NUM_SHARDS))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """The same 24 digits (20 px) as parquet shards and as a ``save_to_disk`` folder; a tiny saved autoencoder."""
    root = tmp_path_factory.mktemp("data")
    rows = digits()
    for shard in range(NUM_SHARDS):
        rows.select(range(shard * SHARD_SIZE, (shard + 1) * SHARD_SIZE)).to_parquet(root / f"train-{shard}.parquet")
    DatasetDict(train=rows).save_to_disk(root / "in_memory")
    tiny_vitok().save_pretrained(root / "vae")
    return {"root": root, "shards": root / "train-*.parquet", "in_memory": root / "in_memory", "vae": root / "vae"}


def dit_arguments(data: dict[str, Path], output_dir: Path, latents: Path, *source: str) -> list[str]:
    return [
        "--vae_name_or_path", str(data["vae"]), *source, "--output_dir", str(output_dir), "--latent_cache_dir",
        str(latents), "--resolution", "16", "--encode_batch_size", "4", "--num_layers", "1", "--num_attention_heads",
        "2", "--attention_head_dim", "8", "--per_device_train_batch_size", "8", "--max_train_steps", "1",
    ]  # fmt: skip


def stream_arguments(data: dict[str, Path], output_dir: Path, latents: Path, *extra: str) -> list[str]:
    return dit_arguments(data, output_dir, latents, "--streaming", "--data_files", str(data["shards"]), *extra)


def stacked(cache: LatentCacheDataset) -> torch.Tensor:
    return torch.cat(list(cache.shard_moments()))


@pytest.fixture(scope="module")
def streamed(data, tmp_path_factory) -> LatentCacheDataset:
    """The cache of a one-process ``--streaming --data_files`` run."""
    root = tmp_path_factory.mktemp("streamed")
    results = train_dit.main(stream_arguments(data, root / "run", root / "latents"))
    assert results["train_steps"] == 1
    return LatentCacheDataset(results["latent_cache"])


def test_stream_cache_equals_the_map_style_cache_and_is_reused(data, streamed, tmp_path, monkeypatch):
    in_memory = ("--dataset_name", str(data["in_memory"]))
    mapped = LatentCacheDataset(
        train_dit.main(dit_arguments(data, tmp_path / "run", tmp_path, *in_memory))["latent_cache"]
    )
    # Same rows, same --resolution (lazily on the stream, Dataset.map on the rows), same batches: same latents.
    assert streamed.path.name.startswith("stream-") and len(streamed) == len(mapped) == 24
    assert torch.equal(stacked(streamed), stacked(mapped))
    assert torch.equal(streamed.labels, mapped.labels) and streamed.labels.tolist() == digits()["label"]
    for key in ("num_samples", "latent_shape", "deterministic", "class_names", "autoencoder_fingerprint"):
        assert streamed.metadata[key] == mapped.metadata[key], key
    assert streamed.latent_shape == (4, 4, 4) and streamed.metadata["class_names"] == list("0123456789")
    source = streamed.metadata["source"]
    assert [Path(file["path"]).name for file in source["data_files"]] == [f"train-{n}.parquet" for n in range(3)]
    assert source["resolution"] == 16 and (source["pixel_column"], source["label_column"]) == ("image", "label")

    # A second run on unchanged shards reads the cache: nothing is encoded, no shard is rewritten.
    encoded = []
    encode = AutoencoderViTok.encode
    monkeypatch.setattr(
        AutoencoderViTok, "encode", lambda self, x, **kw: encoded.append(len(x)) or encode(self, x, **kw)
    )
    mtime = (streamed.path / streamed.metadata["shards"][0]).stat().st_mtime_ns
    again = train_dit.main(stream_arguments(data, tmp_path / "again", streamed.path.parent))
    assert again["latent_cache"] == str(streamed.path) and encoded == []
    assert (streamed.path / streamed.metadata["shards"][0]).stat().st_mtime_ns == mtime


def test_the_stream_key_follows_the_files_the_resolution_and_the_autoencoder(data, tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for shard in range(NUM_SHARDS):
        (folder / f"train-{shard}.parquet").write_bytes((data["root"] / f"train-{shard}.parquet").read_bytes())

    def key(source: dict, resolution: int = 16, vae: AutoencoderViTok = tiny_vitok()) -> str:
        return stream_cache_path(vae, {**source, "resolution": resolution}, tmp_path).name

    local = describe_stream_source(data_files=[str(folder)])
    assert local == describe_stream_source(data_files=[str(folder / "*.parquet")])  # the same files, however named
    # A local folder as --dataset_name: the files its builder resolves, with their sizes and modification times.
    as_dataset = describe_stream_source(dataset_name=str(folder))
    assert as_dataset["split"] == "train" and as_dataset["data_files"] == local["data_files"]
    assert key(local, resolution=32) != key(local) != key(local, vae=tiny_vitok(seed=1))

    stat = (folder / "train-1.parquet").stat()
    os.utime(folder / "train-1.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched
    assert key(describe_stream_source(data_files=[str(folder)])) != key(local)
    assert key(describe_stream_source(dataset_name=str(folder))) != key(as_dataset)
    (folder / "train-2.parquet").write_bytes((data["root"] / "train-0.parquet").read_bytes())  # rewritten
    assert (
        describe_stream_source(data_files=[str(folder)])["data_files"][2]["mtime_ns"]
        != local["data_files"][2]["mtime_ns"]
    )


def webdataset_shards(folder: Path, rows) -> list[str]:
    """``rows`` as two webdataset shards: ``NNNNN.png`` and ``NNNNN.cls`` per example."""
    files = []
    for shard, start in enumerate(range(0, len(rows), len(rows) // 2)):
        files.append(str(folder / f"train-{shard}.tar"))
        with tarfile.open(files[-1], "w") as tar:
            for index in range(start, start + len(rows) // 2):
                png = io.BytesIO()
                rows[index]["image"].save(png, format="PNG")
                for suffix, payload in (("png", png.getvalue()), ("cls", str(rows[index]["label"]).encode())):
                    info = tarfile.TarInfo(f"{index:05d}.{suffix}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return files


def test_webdataset_stream_cache_equals_the_dataset_cache(tmp_path):
    rows, vae = digits(image_size=16).select(range(12)), tiny_vitok()
    files = webdataset_shards(tmp_path, rows)
    stream = load_streaming_dataset(data_files=files)
    cache = build_latent_cache_from_stream(
        vae, stream, tmp_path / "latents", describe_stream_source(data_files=files), "png", "cls", batch_size=3,
        shard_size=4, show_progress=False,
    )  # fmt: skip
    expected = build_latent_cache(vae, rows, tmp_path / "latents", batch_size=3, shard_size=4, show_progress=False)
    assert cache.metadata["shard_sizes"] == expected.metadata["shard_sizes"] == [6, 6]
    assert torch.equal(stacked(cache), stacked(expected)) and torch.equal(cache.labels, expected.labels)
    assert cache.metadata["class_names"] is None  # webdataset's .cls is a plain integer


def test_streaming_flags_and_streams_are_checked(data, tmp_path):
    def fails(match: str, *arguments: str) -> None:
        with pytest.raises(ValueError, match=match):
            train_dit.main(dit_arguments(data, tmp_path / "run", tmp_path, *arguments))

    fails("--train_dir: cannot be streamed", "--streaming", "--train_dir", str(tmp_path))
    fails("--streaming: expected a Hub dataset or --data_files.*got --dataset_name digits \\(the bundled dataset",
          "--streaming", "--dataset_name", "digits")  # fmt: skip
    fails("--streaming: expected a Hub dataset.*\\(a save_to_disk folder", "--streaming", "--dataset_name",
          str(data["in_memory"]))  # fmt: skip
    fails("--streaming: expected exactly one of --dataset_name", "--streaming", "--data_files", str(data["shards"]),
          "--dataset_name", "imagenet")  # fmt: skip
    fails("--data_files: only read with --streaming", "--data_files", str(data["shards"]))
    fails("--label_column: expected one of the columns \\['image', 'label'\\], got 'cls'", "--streaming",
          "--data_files", str(data["shards"]), "--label_column", "cls")  # fmt: skip
    # A source on the command line replaces the --config file's (the ImageNet config names a Hub dataset).
    config = tmp_path / "imagenet.yaml"
    config.write_text("dataset_name: ILSVRC/imagenet-1k\ndataset_config_name: full\nresolution: 256\n")
    args = train_dit.parse_args(["--config", str(config), *stream_arguments(data, tmp_path, tmp_path)])
    assert (args.dataset_name, args.dataset_config_name, args.data_files) == (None, None, [str(data["shards"])])
    for flag in ("--validation_data_files", "--shuffle_buffer_size"):  # train_dit shuffles the cache, not the stream
        with pytest.raises(SystemExit):
            train_dit.parse_args(stream_arguments(data, tmp_path, tmp_path, flag, "1"))

    stream = load_streaming_dataset(data_files=[str(data["shards"])])
    with pytest.raises(ValueError, match="stream: expected a column 'pixels', got columns \\['image', 'label'\\]"):
        build_latent_cache_from_stream(tiny_vitok(), stream, tmp_path, {"test": 1}, pixel_column="pixels")
    with pytest.raises(ValueError, match="stream: expected at least one example"):
        build_latent_cache_from_stream(tiny_vitok(), stream.take(0), tmp_path, {"test": 2}, show_progress=False)
    with pytest.raises(ValueError, match="source: expected a non-empty dict"):
        build_latent_cache_from_stream(tiny_vitok(), stream, tmp_path, {})


@pytest.mark.slow
def test_two_processes_encode_the_cache_one_process_encodes(data, streamed, tmp_path):
    run_two_processes(TRAINING_DIR / "train_dit.py", *stream_arguments(data, tmp_path / "run", tmp_path / "latents"))
    (path,) = [path for path in (tmp_path / "latents").iterdir()]
    sharded = LatentCacheDataset(path)
    # Rank 0 encodes the first two parquet shards, rank 1 the third: merged in rank order, the stream's order.
    assert path.name == streamed.path.name and sharded.metadata["shard_sizes"] == [16, 8]
    assert sharded.metadata["shards"] == ["shard-r00000-00000.safetensors", "shard-r00001-00000.safetensors"]
    assert torch.equal(stacked(sharded), stacked(streamed)) and torch.equal(sharded.labels, streamed.labels)
    assert sharded.metadata["source"] == streamed.metadata["source"]
