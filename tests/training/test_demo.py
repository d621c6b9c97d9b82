"""`make demo` (``demo/``): when one chain of stages ends, the other process takes the freed cores; the MKL mode the
demo sets makes that switch unable to change a result; the recipes run with their command lines."""

from __future__ import annotations

import ast
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch
from torch import nn

from demo.recipes import run_recipe
from demo.run import REPRODUCIBLE_MKL_MODE, idle_cores, take_freed_cores

REPOSITORY = Path(__file__).resolve().parents[2]


def handle_pending_signals() -> None:
    """A pure-Python call: CPython runs pending signal handlers when it enters a function."""


def torch_threads_and_watcher() -> tuple[int, bool]:
    """This worker's torch thread count, and whether a ``take_freed_cores`` watcher thread is alive."""
    return torch.get_num_threads(), any(thread.name == "take_freed_cores" for thread in threading.enumerate())


def signals_with_a_python_handler() -> list[int]:
    return [number for number in signal.valid_signals() if callable(signal.getsignal(number))]


def spin_until(stop) -> None:
    while not stop.is_set():
        pass


def torch_threads_once_signalled() -> int:
    """The thread count once the watcher thread has raised its signal and the main thread has handled it (the
    watcher ends right after raising it, so joining it, if it is still alive, orders the two without any time
    window)."""
    for thread in threading.enumerate():
        if thread.name == "take_freed_cores":
            thread.join()
    handle_pending_signals()
    return torch.get_num_threads()


@pytest.mark.parametrize("min_idle_cores", [0.0, 1e6], ids=["any-load", "busy-machine"])
def test_take_freed_cores_raises_the_main_threads_torch_threads_once_the_event_is_set(min_idle_cores):
    """With the event the worker takes the freed core, unless the machine leaves fewer than ``min_idle_cores`` idle
    (0: the check is off; a million: never met)."""
    context = multiprocessing.get_context("spawn")
    cores_freed = context.Event()
    usable_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    initargs = (1, cores_freed, min_idle_cores)
    with ProcessPoolExecutor(1, context, initializer=take_freed_cores, initargs=initargs) as pool:
        assert pool.submit(torch_threads_and_watcher).result() == (1, True), "threads changed before the event"
        cores_freed.set()
        expected = min(2, usable_cores) if min_idle_cores == 0 else 1
        assert pool.submit(torch_threads_once_signalled).result() == expected


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="reads /proc/stat")
def test_idle_cores_sees_a_busy_core():
    """While a process spins, at most all cores but one are idle, whatever else the machine runs."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    spinner = context.Process(target=spin_until, args=(stop,))
    spinner.start()
    try:
        time.sleep(0.2)
        busy = idle_cores(0.5)
    finally:
        stop.set()
        spinner.join()
    assert 0 <= busy <= os.cpu_count() - 0.8


def test_the_demos_signal_is_not_a_preemption_signal_of_the_engine():
    from run_engine import PREEMPTION_SIGNALS

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, context, initializer=take_freed_cores, initargs=(1, context.Event())) as pool:
        handled = set(pool.submit(signals_with_a_python_handler).result())
    assert handled and not handled & set(PREEMPTION_SIGNALS)


def test_take_freed_cores_without_an_event_only_sets_the_threads():
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, context, initializer=take_freed_cores, initargs=(1, None)) as pool:
        assert pool.submit(torch_threads_and_watcher).result() == (1, False)


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


def test_no_demo_file_imports_a_training_script():
    scripts = {path.stem for path in (REPOSITORY / "training").glob("*.py")}
    for path in (REPOSITORY / "demo").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & scripts, f"{path.name} imports {names}"


def test_run_recipe_runs_the_command_line_and_returns_the_run_folders_results(tmp_path):
    results = run_recipe(
        "train_cct.py",
        [
            "--dataset_name", "digits", "--image_size", "16", "--preset", "cct_2_3x2_32",
            "--config_overrides", "hidden_size=16,intermediate_size=32,conv_intermediate_channels=8",
            "--max_train_steps", "2", "--per_device_train_batch_size", "8", "--seed", "0",
            "--output_dir", str(tmp_path / "cct"),
        ],
    )  # fmt: skip
    assert results["train_steps"] == 2 and 0 <= results["eval_accuracy"] <= 1
    assert sys.argv[0] != str(REPOSITORY / "training" / "train_cct.py"), "sys.argv was not restored"
    with pytest.raises(ValueError, match="flags: expected --output_dir"):
        run_recipe("train_cct.py", ["--dataset_name", "digits"])
