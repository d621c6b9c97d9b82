"""Encode a dataset once with an autoencoder and keep the latent distributions on disk (safetensors shards).

A cache lives in ``cache_root/<dataset fingerprint>-<autoencoder fingerprint>/``: the key changes when the data
(``datasets`` fingerprint, which also covers ``map``/``select``/... transforms) or the autoencoder (its config
and every weight) changes, so a retrained or reconfigured autoencoder never reuses stale latents, while reruns
with the same ones skip encoding. Each sample stores the posterior parameters ``[mean | logvar]`` ``(2c, ...)``
rather than one draw, so training can draw a fresh ``posterior.sample()`` every epoch, as ViTok's DiT does.
A cache is written to a temporary folder and renamed into place when complete. Under ``torch.distributed``
(``distributed=True``) every process encodes its share of the rows and the shards are merged into one cache.

A stream (``datasets.IterableDataset``: a Hub dataset with ``streaming=True``, local webdataset / parquet shards) is
cached the same way by :func:`build_latent_cache_from_stream`, in the same format, under
``cache_root/stream-<source key>-<autoencoder fingerprint>/``: a stream has no fingerprint, so the key hashes a
description of its source (files with sizes and modification times, or a Hub dataset at a revision, and the
preprocessing).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, IterableDataset
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..vitok.latent_statistics import LatentStatistics

METADATA_FILE = "latent_cache.json"


def autoencoder_fingerprint(vae: torch.nn.Module) -> str:
    """SHA-256 over the autoencoder's class, config and all parameters/buffers (name, dtype, shape, bytes)."""
    digest = hashlib.sha256(type(vae).__qualname__.encode())
    config = {key: value for key, value in dict(vae.config).items() if not key.startswith("_")}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def latent_cache_path(vae: torch.nn.Module, dataset: Dataset, cache_root: str | os.PathLike) -> Path:
    """The folder that holds (or will hold) the latents of ``dataset`` encoded by ``vae``."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset: expected a datasets.Dataset, got {type(dataset).__name__}.")
    return Path(cache_root) / f"{dataset._fingerprint[:16]}-{autoencoder_fingerprint(vae)[:16]}"


def pixels_from_example(value) -> torch.Tensor:
    """One image (PIL or ``(H, W, 3)`` array) -> ``(3, H, W)``, or one video (``(T, H, W, 3)`` array or a list of
    PIL frames) -> ``(3, T, H, W)``; integer pixel values 0..255 become float32 in [-1, 1]."""
    if isinstance(value, (list, tuple)) and value and hasattr(value[0], "convert"):
        array = np.stack([np.asarray(frame.convert("RGB")) for frame in value])
    elif hasattr(value, "convert"):
        array = np.asarray(value.convert("RGB"))
    else:
        array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer) or array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(
            f"pixels: expected an RGB image (H, W, 3) or video (T, H, W, 3) of 0..255 integers, "
            f"got {array.dtype} {array.shape}."
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"pixels: expected values in 0..255, got [{array.min()}, {array.max()}].")
    pixels = torch.from_numpy(array.astype(np.float32)) / 127.5 - 1.0
    return pixels.permute(3, 0, 1, 2) if pixels.ndim == 4 else pixels.permute(2, 0, 1)


class LatentCacheDataset(torch.utils.data.Dataset):
    """A completed latent cache: ``dataset[i] = {"moments": (2c, ...) float32, "label": int64}``.

    The shards are memory-mapped (``safetensors.safe_open``), so a cache larger than RAM (ImageNet latents) works;
    each process (and each dataloader worker) opens its own handles.

    Attributes:
        labels: ``(N,)`` int64 class ids.
        metadata: contents of ``latent_cache.json`` (fingerprints, shard sizes, latent shape, class names,
            ``deterministic``).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        metadata_path = self.path / METADATA_FILE
        if not metadata_path.is_file():
            raise FileNotFoundError(
                f"path: expected a completed latent cache with {METADATA_FILE}, got {str(self.path)!r}."
            )
        self.metadata = json.loads(metadata_path.read_text())
        self.shard_ends = np.cumsum(self.metadata["shard_sizes"]).tolist()
        self._handles: list | None = None
        self.labels = torch.cat([self._shard(index).get_tensor("labels") for index in range(len(self.shard_ends))])
        if len(self.labels) != self.metadata["num_samples"]:
            raise ValueError(
                f"path: {self.path} should hold {self.metadata['num_samples']} samples, its shards hold "
                f"{len(self.labels)}."
            )

    def _shard(self, index: int):
        if self._handles is None:
            self._handles = [safe_open(self.path / name, framework="pt") for name in self.metadata["shards"]]
        return self._handles[index]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": None}  # handles are per process

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """``(c, h, w)`` or ``(c, t, h, w)`` of one latent sample."""
        return tuple(self.metadata["latent_shape"])

    @property
    def is_video(self) -> bool:
        return len(self.latent_shape) == 4

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a latent cache of {len(self)} samples.")
        index %= len(self)
        shard = bisect.bisect_right(self.shard_ends, index)
        start = self.shard_ends[shard - 1] if shard else 0
        return {
            "moments": self._shard(shard).get_slice("moments")[index - start],
            "label": self.labels[index],
        }

    def shard_moments(self) -> Iterator[torch.Tensor]:
        """The moments shard by shard, ``(n, 2c, ...)`` each (for statistics over the whole cache)."""
        for index in range(len(self.shard_ends)):
            yield self._shard(index).get_tensor("moments")

    def latent_std(self) -> float:
        """Standard deviation of posterior samples (what the DiT trains on) over the whole cache, exact from the
        cached moments (:class:`hf_compact.vitok.latent_statistics.LatentStatistics`); ``1 / std`` is a
        ``scaling_factor``."""
        statistics = LatentStatistics(sample_posterior=True)
        for moments in self.shard_moments():
            statistics.update(self.latent_distribution(moments))
        return statistics.std

    def latent_distribution(self, moments: torch.Tensor) -> DiagonalGaussianDistribution:
        """The posterior of a batch of cached ``moments`` (deterministic for latent_type="deterministic")."""
        return DiagonalGaussianDistribution(moments, deterministic=self.metadata["deterministic"])


def _batches(dataset: Dataset, pixel_column: str, label_column: str, batch_size: int) -> Iterator[tuple]:
    dataset = dataset.with_format("numpy", columns=[pixel_column, label_column])
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start : start + batch_size]
        pixels = torch.stack([pixels_from_example(value) for value in rows[pixel_column]])
        yield pixels, torch.as_tensor(rows[label_column], dtype=torch.long)


def _stream_batches(stream: IterableDataset, pixel_column: str, label_column: str, batch_size: int) -> Iterator[tuple]:
    """The examples of ``stream`` in its order, ``batch_size`` at a time (the last batch may be smaller)."""
    examples = iter(stream)
    while rows := list(itertools.islice(examples, batch_size)):
        for column in (pixel_column, label_column):  # a stream of unknown features is checked as it comes
            if column not in rows[0]:
                raise ValueError(f"stream: expected a column {column!r}, got columns {sorted(rows[0])}.")
        pixels = torch.stack([pixels_from_example(row[pixel_column]) for row in rows])
        yield pixels, torch.as_tensor([row[label_column] for row in rows], dtype=torch.long)


@torch.no_grad()
def _encode_shards(
    vae: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    total: int | None,
    staging: Path,
    prefix: str,
    shard_size: int,
    show_progress: bool,
) -> dict:
    """Encode ``batches`` of ``(pixels, labels)`` (``total`` samples, ``None`` if unknown) into
    ``staging/{prefix}-NNNNN.safetensors``; returns the part of the metadata it wrote."""
    device, dtype = vae.device, vae.dtype
    moments, labels, shards, shard_sizes = [], [], [], []
    written = {"shards": shards, "shard_sizes": shard_sizes, "latent_shape": None, "deterministic": False}

    def flush() -> None:
        name = f"{prefix}-{len(shards):05d}.safetensors"
        save_file({"moments": torch.cat(moments).contiguous(), "labels": torch.cat(labels)}, staging / name)
        shards.append(name)
        shard_sizes.append(sum(len(batch) for batch in labels))
        moments.clear()
        labels.clear()

    was_training = vae.training
    vae.eval()
    progress = tqdm(total=total, desc="Encoding latents", disable=not show_progress)
    for pixels, batch_labels in batches:
        posterior = vae.encode(pixels.to(device=device, dtype=dtype)).latent_dist
        written["deterministic"] = bool(posterior.deterministic)
        written["latent_shape"] = [posterior.mean.shape[1], *posterior.mean.shape[2:]]
        moments.append(posterior.parameters.float().cpu())
        labels.append(batch_labels)
        progress.update(len(batch_labels))
        if sum(len(batch) for batch in labels) >= shard_size:
            flush()
    progress.close()
    vae.train(was_training)
    if labels:
        flush()
    return written


def _process_group() -> tuple[int, int]:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise ValueError(
            "distributed: expected an initialised torch.distributed process group (run under torchrun or after "
            "Accelerator()), got none."
        )
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def _build_cache(
    vae: torch.nn.Module,
    path: Path,
    part_batches: Callable[[int, int], tuple[Iterable[tuple[torch.Tensor, torch.Tensor]], int | None]],
    source: dict,
    class_names: list[str] | None,
    shard_size: int,
    show_progress: bool,
    distributed: bool,
) -> LatentCacheDataset:
    """Reuse the complete cache at ``path``, or write it: process ``r`` of ``W`` encodes the batches of
    ``part_batches(r, W)`` (and their number of samples, ``None`` if unknown) into its own shards of
    ``path.partial``, process 0 merges their metadata in rank order (with ``source``, what identifies the data)
    and renames the folder to ``path``."""
    rank, world_size = _process_group() if distributed else (0, 1)

    def barrier() -> None:
        if distributed:
            torch.distributed.barrier()

    complete = (path / METADATA_FILE).is_file()
    barrier()  # every process decides before process 0 may start writing
    if complete:
        return LatentCacheDataset(path)

    staging = path.with_name(path.name + ".partial")
    if rank == 0:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    barrier()
    batches, total = part_batches(rank, world_size)
    prefix = f"shard-r{rank:05d}" if distributed else "shard"
    written = _encode_shards(vae, batches, total, staging, prefix, shard_size, show_progress)
    (staging / f"rank-{rank:05d}.json").write_text(json.dumps(written))
    barrier()
    # Every process reads the parts, so that all of them raise together for an empty stream (a dataset's length is
    # checked before).
    parts = [json.loads((staging / f"rank-{index:05d}.json").read_text()) for index in range(world_size)]
    encoded = [part for part in parts if part["latent_shape"] is not None]
    if not encoded:
        raise ValueError(f"stream: expected at least one example to encode, got none (source {source}).")
    barrier()
    if rank == 0:
        for index in range(world_size):
            (staging / f"rank-{index:05d}.json").unlink()
        shard_sizes = [size for part in parts for size in part["shard_sizes"]]
        metadata = {
            "autoencoder_fingerprint": autoencoder_fingerprint(vae),
            **source,
            "num_samples": sum(shard_sizes),
            "latent_shape": encoded[0]["latent_shape"],
            "deterministic": encoded[0]["deterministic"],
            "class_names": class_names,
            "shards": [name for part in parts for name in part["shards"]],
            "shard_sizes": shard_sizes,
        }
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        shutil.rmtree(path, ignore_errors=True)
        os.replace(staging, path)
    barrier()
    return LatentCacheDataset(path)


def build_latent_cache(
    vae: torch.nn.Module,
    dataset: Dataset,
    cache_root: str | os.PathLike,
    pixel_column: str = "image",
    label_column: str = "label",
    batch_size: int = 64,
    shard_size: int = 8192,
    show_progress: bool = True,
    distributed: bool = False,
) -> LatentCacheDataset:
    """Encode ``dataset`` with ``vae`` into a cache under ``cache_root``, or reuse the matching cache.

    With ``distributed=True`` every process of the ``torch.distributed`` group calls this function (not inside
    ``accelerator.main_process_first()``): process ``r`` of ``W`` encodes the ``r``-th contiguous ``1 / W`` of the
    rows (``Dataset.shard(W, r, contiguous=True)``) into its own shard files, and process 0 merges their metadata in
    rank order, so the cache holds the same samples in the same order as one written by a single process.
    ``cache_root`` must be a folder that every process sees (a shared file system across nodes).

    Args:
        vae: autoencoder with the ``AutoencoderKL`` API (``encode(x).latent_dist``), e.g. ``AutoencoderViTok``.
        dataset: rows with RGB images/videos in ``pixel_column`` (all the same size) and integer labels.
        cache_root: folder holding caches; each (dataset, autoencoder) pair gets its own sub-folder.
        pixel_column, label_column: column names.
        batch_size: encoding batch size.
        shard_size: samples per safetensors file (per process when distributed).
        show_progress: show a tqdm bar (pass ``accelerator.is_local_main_process``).
        distributed: share the encoding among the processes of the initialised process group.

    Returns:
        The cache as a :class:`LatentCacheDataset`, on every process.
    """
    if len(dataset) == 0:
        raise ValueError("dataset: expected at least one row, got an empty dataset.")
    for column in (pixel_column, label_column):
        if column not in dataset.column_names:
            raise ValueError(f"dataset: expected a column {column!r}, got columns {dataset.column_names}.")

    def part_batches(rank: int, world_size: int) -> tuple[Iterator[tuple], int]:
        part = dataset.shard(world_size, rank, contiguous=True) if distributed else dataset
        return _batches(part, pixel_column, label_column, batch_size), len(part)

    return _build_cache(
        vae, latent_cache_path(vae, dataset, cache_root), part_batches, {"dataset_fingerprint": dataset._fingerprint},
        getattr(dataset.features[label_column], "names", None), shard_size, show_progress, distributed,
    )  # fmt: skip


def stream_cache_path(vae: torch.nn.Module, source: dict, cache_root: str | os.PathLike) -> Path:
    """The folder that holds (or will hold) the latents of the stream described by ``source`` (JSON-serialisable:
    :func:`hf_compact.data.streaming.describe_stream_source` plus any preprocessing) encoded by ``vae``:
    ``cache_root/stream-<SHA-256 of source>-<autoencoder fingerprint>`` (16 hex digits each)."""
    digest = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()
    return Path(cache_root) / f"stream-{digest[:16]}-{autoencoder_fingerprint(vae)[:16]}"


def build_latent_cache_from_stream(
    vae: torch.nn.Module,
    stream: IterableDataset,
    cache_root: str | os.PathLike,
    source: dict,
    pixel_column: str = "image",
    label_column: str = "label",
    batch_size: int = 64,
    shard_size: int = 8192,
    show_progress: bool = True,
    distributed: bool = False,
) -> LatentCacheDataset:
    """Encode a stream (``datasets.IterableDataset``) with ``vae`` into a cache under ``cache_root``, in the
    format of :func:`build_latent_cache` (read by :class:`LatentCacheDataset`), or reuse the matching cache.

    A stream has no ``datasets`` fingerprint: the cache is keyed by ``source``, a description of where its examples
    come from (:func:`hf_compact.data.streaming.describe_stream_source`: files with their sizes and modification
    times, or a Hub dataset at a revision), which must also name any preprocessing that changes the pixels (e.g.
    ``{"resolution": 256}``), plus the column names and the autoencoder (:func:`stream_cache_path`). The stream is
    encoded in its order, unshuffled (training shuffles the cache).

    With ``distributed=True`` every process calls this function: process ``r`` of ``W`` encodes the ``r``-th
    contiguous block of the stream's shards (``IterableDataset.shard(W, r, contiguous=True)``; not
    ``split_dataset_by_node``, which deals shards or examples round-robin) into its own shard files, and process 0
    merges their metadata in rank order, so the cache is the one a single process writes, sample for sample. A
    stream of fewer shards (files) than processes is encoded by its first ``num_shards`` processes only.

    Args:
        vae: autoencoder with the ``AutoencoderKL`` API (``encode(x).latent_dist``), e.g. ``AutoencoderViTok``.
        stream: examples with RGB images/videos in ``pixel_column`` (all the same size) and integer labels.
        cache_root: folder holding caches (shared by every process).
        source: JSON-serialisable description of the stream's data and preprocessing (the cache key).
        pixel_column, label_column: column names.
        batch_size: encoding batch size.
        shard_size: samples per safetensors file (per process when distributed).
        show_progress: show a tqdm bar (without a total: a stream has no length).
        distributed: share the encoding among the processes of the initialised process group.

    Returns:
        The cache as a :class:`LatentCacheDataset` (``num_samples``: the examples encoded), on every process.
    """
    if not isinstance(stream, IterableDataset):
        raise TypeError(f"stream: expected a datasets.IterableDataset, got {type(stream).__name__}.")
    if not isinstance(source, dict) or not source:
        raise ValueError(f"source: expected a non-empty dict describing the stream's data, got {source!r}.")
    if stream.column_names is not None:
        for column in (pixel_column, label_column):
            if column not in stream.column_names:
                raise ValueError(f"stream: expected a column {column!r}, got columns {stream.column_names}.")
        stream = stream.select_columns([pixel_column, label_column])
    source = {**source, "pixel_column": pixel_column, "label_column": label_column}
    class_names = getattr(stream.features[label_column], "names", None) if stream.features else None

    def part_batches(rank: int, world_size: int) -> tuple[Iterator[tuple], None]:
        parts = min(world_size, stream.num_shards)
        if rank >= parts:
            return iter(()), None
        part = stream.shard(parts, rank, contiguous=True) if parts > 1 else stream
        return _stream_batches(part, pixel_column, label_column, batch_size), None

    return _build_cache(
        vae, stream_cache_path(vae, source, cache_root), part_batches, {"source": source}, class_names, shard_size,
        show_progress, distributed,
    )  # fmt: skip
