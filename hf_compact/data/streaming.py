"""Streaming training data: a Hub dataset read with ``streaming=True`` or local webdataset / parquet shards, split
across processes, shuffled per epoch, transformed in ``DataLoader`` workers and resumed exactly at its position.

Each process reads its part of the stream (``datasets.distributed.split_dataset_by_node``: whole shards when the
number of shards is a multiple of the number of processes, else every ``world_size``-th example). Inside a process
each ``DataLoader`` worker reads its own shards (``datasets`` splits them by worker), shuffles them through its own
buffer of ``shuffle_buffer_size`` examples (the order depends on (seed, epoch) only) and makes whole batches.

The position is what makes a resumed run repeat a straight one exactly, buffer and workers included: per worker,
the number of examples it has put into delivered batches this epoch, plus the order in which workers take turns.
On resume each worker replays its shuffled stream and drops that many examples before decoding them (the shards are
read again up to the position, nothing is decoded or transformed), so the shuffle buffer comes back with the same
content. Batches are handed out in a fixed order (worker 0, 1, ... in turn, skipping workers that ran dry), whatever
order the workers finish them in. The position is only valid for the same seed, data, batch size, buffer size and
numbers of workers and processes; :meth:`StreamingDataLoader.load_state_dict` refuses another configuration.

The length of a stream is unknown: training on it needs ``--max_train_steps``; an epoch ends when a process's
shards are exhausted (the engine ends it on every process at once, so that the others' last batches are dropped).
Per-example augmentations are exact too: before each example is transformed the global generators (``random``,
NumPy, torch) are seeded from (seed, epoch, process, worker, example).
"""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import default_collate, get_worker_info

from hf_compact.utils.seeds import derive_seed, seed_global_generators

if TYPE_CHECKING:
    from datasets import IterableDataset

# Held-out splits of a Hub dataset, in the order they are looked for (evaluation of a streamed run).
EVALUATION_SPLITS = ("validation", "valid", "val", "test")
# Builder of ``datasets`` for each kind of local shard file.
SHARD_BUILDERS = {".tar": "webdataset", ".parquet": "parquet"}
_GLOB_CHARACTERS = frozenset("*?[")


def add_streaming_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    streaming_help: str | None = None,
    validation_data_files: bool = True,
    shuffle_buffer_size: bool = True,
) -> None:
    """``--streaming``, ``--data_files``, ``--validation_data_files`` and ``--shuffle_buffer_size`` (same names and
    help in every script).

    Args:
        parser: where the flags go.
        streaming_help: the help of ``--streaming``, for a script that uses the stream otherwise (default: trained
            on directly, which needs ``--max_train_steps``).
        validation_data_files, shuffle_buffer_size: add these flags (a script that neither evaluates on held-out
            shards nor shuffles the stream goes without them).
    """
    parser.add_argument(
        "--streaming",
        action="store_true",
        help=streaming_help
        or "Stream the training data (--dataset_name from the Hub, or --data_files) instead of downloading it, "
        "split across processes and resumed at its position; needs --max_train_steps.",
    )
    parser.add_argument(
        "--data_files",
        nargs="+",
        default=None,
        help="With --streaming: local webdataset (.tar) or parquet shards (files, folders or glob patterns).",
    )
    if validation_data_files:
        parser.add_argument(
            "--validation_data_files",
            nargs="+",
            default=None,
            help="With --streaming --data_files: held-out shards for evaluation (their first --max_eval_samples).",
        )
    if shuffle_buffer_size:
        parser.add_argument(
            "--shuffle_buffer_size",
            type=int,
            default=1000,
            help="With --streaming: examples each data worker shuffles among (0: the shards' order, unshuffled).",
        )


def check_streaming_arguments(args: argparse.Namespace, *, needs_max_train_steps: bool = True) -> None:
    """Raise a ``ValueError`` naming the flag for a streaming setup that cannot run.

    ``--validation_data_files`` and ``--shuffle_buffer_size`` are checked where the script has them
    (:func:`add_streaming_arguments`). ``needs_max_train_steps=False``: the script trains on something of known
    length made from the stream (the DiT's latent cache), not on the stream itself.
    """
    validation_files = getattr(args, "validation_data_files", None)
    if not args.streaming:
        for name, value in (("data_files", args.data_files), ("validation_data_files", validation_files)):
            if value is not None:
                raise ValueError(f"--{name}: only read with --streaming, got {value} without it.")
        return
    if getattr(args, "train_dir", None) is not None:
        raise ValueError(f"--train_dir: cannot be streamed; pass its images as shards with --data_files, got "
                         f"{args.train_dir!r}.")  # fmt: skip
    if (getattr(args, "dataset_name", None) is None) == (args.data_files is None):
        raise ValueError(
            "--streaming: expected exactly one of --dataset_name (a Hub dataset) / --data_files (local shards), got "
            f"{getattr(args, 'dataset_name', None)!r} and {args.data_files!r}."
        )
    if hasattr(args, "validation_data_files") and args.data_files is not None and validation_files is None:
        raise ValueError(
            "--validation_data_files: expected held-out shards to evaluate on with --streaming --data_files, got None."
        )
    if needs_max_train_steps and args.max_train_steps is None:
        raise ValueError("--max_train_steps: expected a number of updates with --streaming (a stream has no length).")
    if getattr(args, "shuffle_buffer_size", 0) < 0:
        raise ValueError(f"--shuffle_buffer_size: expected an integer >= 0, got {args.shuffle_buffer_size}.")


def resolve_data_files(data_files: Sequence[str | os.PathLike]) -> list[str]:
    """The shard files named by ``--data_files``: each entry is an existing file (taken literally, even with
    ``[`` in its name), a folder (its ``.tar`` / ``.parquet`` files, sorted) or a glob pattern (its sorted matches).

    Raises:
        ValueError: no entry, an entry matching no shard file, or a mix of webdataset and parquet shards.
    """
    if isinstance(data_files, (str, os.PathLike)):
        data_files = [data_files]
    if not data_files:
        raise ValueError("--data_files: expected shard files (.tar or .parquet), folders or glob patterns, got none.")
    files: list[str] = []
    for entry in map(os.fspath, data_files):
        path = Path(entry)
        if path.is_file():
            matches = [entry]
        elif path.is_dir():
            matches = sorted(str(path / name) for name in os.listdir(path) if Path(name).suffix in SHARD_BUILDERS)
        elif _GLOB_CHARACTERS & set(entry):
            matches = sorted(match for match in glob.glob(entry) if Path(match).suffix in SHARD_BUILDERS)
        else:
            raise ValueError(f"--data_files: {entry!r} is not a file, a folder or a glob pattern.")
        if not matches:
            raise ValueError(f"--data_files: {entry!r} names no .tar or .parquet shard file.")
        files += matches
    suffixes = {Path(file).suffix for file in files}
    if len(suffixes) != 1 or not suffixes <= set(SHARD_BUILDERS):
        raise ValueError(
            f"--data_files: expected shards of one kind ({' or '.join(SHARD_BUILDERS)}), got {sorted(suffixes)}."
        )
    return [str(Path(file).resolve()) for file in files]


def _check_one_source(dataset_name: str | None, data_files: Sequence[str | os.PathLike] | None) -> None:
    if (dataset_name is None) == (data_files is None):
        raise ValueError(
            f"dataset_name / data_files: expected exactly one source of the stream, got {dataset_name!r} and "
            f"{data_files!r}."
        )


def load_streaming_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    data_files: Sequence[str | os.PathLike] | None = None,
    split: str = "train",
    cache_dir: str | None = None,
) -> IterableDataset:
    """A ``datasets.IterableDataset`` over a Hub dataset (``streaming=True``) or local shards (``--data_files``,
    see :func:`resolve_data_files`; one stream shard per file)."""
    from datasets import load_dataset

    _check_one_source(dataset_name, data_files)
    if dataset_name is not None:
        dataset = load_dataset(dataset_name, dataset_config_name, split=split, streaming=True, cache_dir=cache_dir)
    else:
        files = resolve_data_files(data_files)
        builder = SHARD_BUILDERS[Path(files[0]).suffix]
        # datasets reads data_files as glob patterns: escape the listed files so that they stay literal.
        patterns = [glob.escape(file) for file in files]
        dataset = load_dataset(builder, data_files={split: patterns}, split=split, streaming=True)
    return dataset


def _file_identity(path: str) -> dict[str, Any]:
    stat = os.stat(path)
    return {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def describe_stream_source(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    data_files: Sequence[str | os.PathLike] | None = None,
    split: str = "train",
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """What identifies the examples of the stream :func:`load_streaming_dataset` reads from the same arguments: a
    JSON-serialisable description to key a cache of what is computed from them (the DiT's latent cache,
    :func:`hf_compact.data.latent_cache.build_latent_cache_from_stream`), since a stream has no fingerprint.

    * ``data_files``: the resolved files (:func:`resolve_data_files`), each with its size and modification time, so
      that rewriting or touching a shard changes the description;
    * ``dataset_name``: its name, config and split, and the data files its builder resolves
      (``datasets.load_dataset_builder(...).config.data_files``; nothing is downloaded): for a Hub repository these
      ``hf://datasets/<name>@<commit>/...`` addresses pin the revision, local files get their sizes and modification
      times as above. A dataset whose builder lists no data files is described by name, config and split only.
    """
    _check_one_source(dataset_name, data_files)
    if data_files is not None:
        return {"data_files": [_file_identity(file) for file in resolve_data_files(data_files)]}
    from datasets import load_dataset_builder

    resolved = load_dataset_builder(dataset_name, dataset_config_name, cache_dir=cache_dir).config.data_files or {}
    files = next((list(files) for name, files in resolved.items() if str(name) == split), None)
    return {
        "dataset_name": dataset_name,
        "dataset_config_name": dataset_config_name,
        "split": split,
        "data_files": None if files is None else [
            _file_identity(file) if os.path.isfile(file) else file for file in files
        ],
    }  # fmt: skip


def load_streaming_evaluation_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    validation_data_files: Sequence[str | os.PathLike] | None = None,
    num_examples: int | None = None,
    cache_dir: str | None = None,
):
    """The evaluation set of a streamed run, in memory (a ``datasets.Dataset``): the first ``num_examples`` (all if
    ``None``) of the Hub dataset's held-out split (the first of :data:`EVALUATION_SPLITS` it has) or of the held-out
    shards ``validation_data_files``.

    Raises:
        ValueError: the Hub dataset has no held-out split.
    """
    from datasets import Dataset, load_dataset

    if dataset_name is not None:
        splits = load_dataset(dataset_name, dataset_config_name, streaming=True, cache_dir=cache_dir)
        held_out = [name for name in EVALUATION_SPLITS if name in splits]
        if not held_out:
            raise ValueError(
                f"--dataset_name: {dataset_name!r} has no held-out split to evaluate a streamed run on (looked for "
                f"{', '.join(EVALUATION_SPLITS)}; it has {', '.join(splits)})."
            )
        stream = splits[held_out[0]]
    else:
        stream = load_streaming_dataset(data_files=validation_data_files)
    if num_examples is not None:
        stream = stream.take(num_examples)
    return Dataset.from_list(list(stream), features=stream.features)


class _WorkerBatches(torch.utils.data.IterableDataset):
    """In each ``DataLoader`` worker: its shards of the process's stream, shuffled, the first ``skip`` examples
    dropped undecoded, then transformed and collated into batches tagged ``(worker, examples_done, batch)``; a
    worker that runs dry sends ``(worker, examples_done, None)``."""

    def __init__(self, loader: StreamingDataLoader):
        self.loader = loader

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        loader = self.loader
        worker_info = get_worker_info()
        worker = worker_info.id if worker_info is not None else 0
        done = loader._skip[worker]
        stream = loader.dataset
        if loader.shuffle_buffer_size:
            stream = stream.shuffle(seed=loader.seed, buffer_size=loader.shuffle_buffer_size)
        stream.set_epoch(loader.epoch)
        features = loader.features
        examples = iter(stream)
        if loader._exhausted[worker]:
            examples = iter(())
        for _ in range(done):
            next(examples, None)
        batch = []
        for example in examples:
            if features is not None:
                example = features.decode_example(example)
            seed_global_generators(derive_seed(loader.seed, loader.epoch, loader.rank, worker, done + len(batch)))
            batch.append(loader.transform(example))
            if len(batch) == loader.batch_size:
                done += len(batch)
                yield worker, done, loader.collate_fn(batch)
                batch = []
        if batch and not loader.drop_last:
            done += len(batch)
            yield worker, done, loader.collate_fn(batch)
        yield worker, done, None


def _no_collate(item):
    """The identity (a module-level function, so that worker processes can unpickle it)."""
    return item


class StreamingDataLoader:
    """Batches of one process's part of a stream, resumable exactly (see the module docstring).

    It is not a ``torch.utils.data.DataLoader`` on purpose: ``accelerator.prepare`` passes it through unchanged,
    since Accelerate would otherwise read the stream on the main process and dispatch it (``dispatch_batches``),
    sharding a stream that ``split_dataset_by_node`` already split. The recipes' run engine (``training/run_engine``)
    moves its batches to the device, ends epochs on all processes together and stores :meth:`state_dict` (one per
    process) in checkpoints.

    Args:
        dataset: the whole stream (:func:`load_streaming_dataset`).
        transform: example (a dict with decoded images) -> item (a dict of tensors...), run in the workers; its
            random draws may use the global generators, seeded per example. ``None``: the example itself.
        batch_size: items per batch (per process).
        rank, world_size: this process and the number of processes (``accelerator.process_index`` /
            ``num_processes``).
        seed: seed of the shard order, the shuffle buffer and the per-example seeds.
        shuffle_buffer_size: examples each worker shuffles among (0: the shards' order, unshuffled).
        num_workers: ``DataLoader`` worker processes (0: read in this process). Keep the number of shards a
            multiple of ``world_size * max(num_workers, 1)``, else workers idle or processes read every shard.
        collate_fn: list of items -> batch (default ``torch.utils.data.default_collate``).
        drop_last: drop each worker's last, incomplete batch of an epoch.
        pin_memory: pin the batches' memory (for copies to a GPU).
    """

    def __init__(
        self,
        dataset: IterableDataset,
        transform: Callable[[dict], Any] | None,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle_buffer_size: int = 0,
        num_workers: int = 0,
        collate_fn: Callable[[list], Any] | None = None,
        drop_last: bool = False,
        pin_memory: bool = False,
    ):
        from datasets import IterableDataset
        from datasets.distributed import split_dataset_by_node

        if not isinstance(dataset, IterableDataset):
            raise TypeError(f"dataset: expected a datasets.IterableDataset, got {type(dataset).__name__}.")
        for name, value, low in (("batch_size", batch_size, 1), ("shuffle_buffer_size", shuffle_buffer_size, 0),
                                 ("num_workers", num_workers, 0), ("world_size", world_size, 1)):  # fmt: skip
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}.")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: expected 0 <= rank < world_size = {world_size}, got {rank}.")
        # Examples are decoded after the shuffle buffer, only those that are used (a resume drops the others).
        self.features = dataset.features
        dataset = dataset.decode(False) if self.features is not None else dataset
        self.dataset = split_dataset_by_node(dataset, rank=rank, world_size=world_size) if world_size > 1 else dataset
        self.transform, self.batch_size = transform or _no_collate, batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle_buffer_size, self.num_workers = shuffle_buffer_size, num_workers
        self.collate_fn = collate_fn or default_collate
        self.drop_last, self.pin_memory = drop_last, pin_memory
        self.epoch = 0
        self._restart_epoch()

    @property
    def num_streams(self) -> int:
        """Workers that read the stream (1 without worker processes)."""
        return max(self.num_workers, 1)

    def _restart_epoch(self) -> None:
        self._skip = [0] * self.num_streams
        self._exhausted = [False] * self.num_streams
        self._next_stream = 0

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning, unless a loaded position belongs to it."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._restart_epoch()

    def __iter__(self) -> Iterator[Any]:
        for batch, _ in self.iter_with_positions():
            yield batch

    def iter_with_positions(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        """The rest of the epoch's batches, each with the position right after it (a :meth:`state_dict`)."""
        loader = torch.utils.data.DataLoader(
            _WorkerBatches(self), batch_size=None, collate_fn=_no_collate, num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )  # fmt: skip
        pending: list[list[Any]] = [[] for _ in range(self.num_streams)]
        done, exhausted, turn = list(self._skip), list(self._exhausted), self._next_stream
        received = iter(loader)
        while not all(exhausted):
            while exhausted[turn]:
                turn = (turn + 1) % self.num_streams
            while not pending[turn]:
                worker, examples_done, batch = next(received)
                pending[worker].append((examples_done, batch))
            examples_done, batch = pending[turn].pop(0)
            if batch is None:
                exhausted[turn] = True
                continue
            done[turn] = examples_done
            turn = (turn + 1) % self.num_streams
            yield batch, self._position(done, exhausted, turn)
        self._restart_epoch()

    def _position(self, done: list[int], exhausted: list[bool], turn: int) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "examples_per_worker": list(done),
            "exhausted_workers": list(exhausted),
            "next_worker": turn,
            "configuration": self._configuration(),
        }

    def _configuration(self) -> dict[str, int]:
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "shuffle_buffer_size": self.shuffle_buffer_size,
            "num_workers": self.num_workers,
            "world_size": self.world_size,
            "rank": self.rank,
        }

    def state_dict(self) -> dict[str, Any]:
        """The position before the next batch (the start of the current epoch unless a position was loaded)."""
        return self._position(self._skip, self._exhausted, self._next_stream)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict` or :meth:`iter_with_positions`) at the next iteration.

        Raises:
            ValueError: the position was taken with another seed, batch size, buffer or number of workers or
                processes (its examples would not map onto this stream).
        """
        changes = {
            name: (old, self._configuration()[name])
            for name, old in state["configuration"].items()
            if old != self._configuration()[name]
        }
        if changes:
            described = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changes.items())
            raise ValueError(
                f"--resume_from_checkpoint: the stream position was saved with other settings ({described}); "
                "resume with the same seed, batch size, --shuffle_buffer_size, --dataloader_num_workers and number "
                "of processes."
            )
        self.epoch = state["epoch"]
        self._skip = list(state["examples_per_worker"])
        self._exhausted = list(state["exhausted_workers"])
        self._next_stream = state["next_worker"]
