"""`make demo`'s orchestration: when one chain of stages ends, the other process takes the freed cores."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from demo import take_freed_cores


def torch_threads_once_changed(initial: int, timeout_s: float = 60.0) -> int:
    """This process's torch thread count, once it differs from ``initial`` (or at ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while torch.get_num_threads() == initial and time.monotonic() < deadline:
        time.sleep(0.01)
    return torch.get_num_threads()


def test_take_freed_cores_raises_the_main_threads_torch_threads_once_the_event_is_set():
    context = multiprocessing.get_context("spawn")
    cores_freed = context.Event()
    usable_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    expected = min(2, usable_cores)
    with ProcessPoolExecutor(1, context, initializer=take_freed_cores, initargs=(1, cores_freed)) as pool:
        assert pool.submit(torch_threads_once_changed, 1, 0.5).result() == 1, "threads changed before the event"
        cores_freed.set()
        assert pool.submit(torch_threads_once_changed, 1).result() == expected


def test_take_freed_cores_without_an_event_only_sets_the_threads():
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, context, initializer=take_freed_cores, initargs=(1, None)) as pool:
        assert pool.submit(torch_threads_once_changed, 1, 0.5).result() == 1
