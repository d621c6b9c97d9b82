"""The tests' one launcher of multi-process runs: ``torchrun --standalone`` with two gloo processes on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).parents[2]


def run_two_processes(script: Path, *arguments: str, timeout: int = 400) -> subprocess.CompletedProcess:
    """Run ``torchrun --standalone --nproc_per_node 2 script *arguments`` and return the finished process.

    Each process gets one intra-op thread, offline Hub and datasets, and the repository and ``training/`` on its
    path. A non-zero exit fails the calling test with the end of the processes' stderr.
    """
    environment = {
        **os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "training")]),
    }  # fmt: skip
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         *arguments],
        env=environment, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed
