"""`make demo`'s orchestration: when one chain of stages ends, the other process takes the freed cores, and the MKL
mode the demo sets makes that switch unable to change a result."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from demo import REPRODUCIBLE_MKL_MODE, take_freed_cores
from torch import nn


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


def weights_after_training(num_threads: int) -> dict[str, torch.Tensor]:
    """A small MLP after 20 AdamW steps with `num_threads` torch threads. Its weight gradients reduce over 2,048
    rows: the shape at which, on this project's CPU, MKL's default GEMMs sum in another order with two threads."""
    torch.set_num_threads(num_threads)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 512), nn.GELU(), nn.Linear(512, 128))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.randn(2048, 128)
    for _ in range(20):
        model(inputs).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.state_dict()


def test_demo_mkl_mode_gives_the_same_weights_with_one_thread_or_two(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", REPRODUCIBLE_MKL_MODE)  # read by each fresh process at its first GEMM
    context = multiprocessing.get_context("spawn")
    weights = {}
    for num_threads in (1, 2):
        with ProcessPoolExecutor(1, context) as pool:
            weights[num_threads] = pool.submit(weights_after_training, num_threads).result()
    for name, tensor in weights[1].items():
        assert torch.equal(tensor, weights[2][name]), name
