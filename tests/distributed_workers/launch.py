"""The tests' one way to run the training scripts: loaded from their files (:func:`load_training_script`), or
launched as two gloo processes on the CPU (``torchrun --standalone``, :func:`run_two_processes`)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).parents[2]
TRAINING_DIR = REPO_ROOT / "training"


def load_training_script(name: str) -> ModuleType:
    """``training/{name}.py`` as a module (loaded once per process), with ``training/`` on the import path as
    ``python training/{name}.py`` has it (the scripts import their run engine, ``training/run_engine``)."""
    if str(TRAINING_DIR) not in sys.path:
        sys.path.insert(0, str(TRAINING_DIR))
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TRAINING_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def run_two_processes(script: Path, *arguments: str, timeout: int = 400) -> subprocess.CompletedProcess:
    """Run ``torchrun --standalone --nproc_per_node 2 script *arguments`` and return the finished process.

    Each process gets one intra-op thread, offline Hub and datasets, and the repository, ``training/`` and this
    folder (so a worker can call :func:`load_training_script` and import the run engine) on its path. A non-zero
    exit fails the calling test with the end of the processes' stderr.
    """
    environment = {
        **os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(TRAINING_DIR), str(Path(__file__).parent)]),
    }  # fmt: skip
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         *arguments],
        env=environment, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed
