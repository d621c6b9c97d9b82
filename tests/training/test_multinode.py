"""Two torchrun agents (``--nnodes 2``, one process each, loopback master) form one job running train_cct.

This is how a two-machine run starts (one agent per machine with ``--node_rank 0`` / ``1``); on loopback both
"nodes" are processes of this machine. Both ranks see other batches yet end with the same parameters, which are
the ones the run saved.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

TESTS_DIR = Path(__file__).parents[1]
WORKER = TESTS_DIR / "distributed_workers" / "train_cct_rank.py"
REPO_ROOT = TESTS_DIR.parent

TRAIN_CCT_FLAGS = [
    "--preset", "cct_2_3x2_32", "--image_size", "16",
    "--config_overrides", "hidden_size=32,intermediate_size=64,num_hidden_layers=1,conv_intermediate_channels=16",
    "--dataset_name", "digits", "--max_eval_samples", "32", "--max_train_samples", "128",
    "--per_device_train_batch_size", "16", "--max_train_steps", "4", "--warmup_epochs", "0", "--cooldown_epochs", "0",
    "--learning_rate", "1e-2", "--no_random_resized_crop", "--hflip_prob", "0", "--randaugment_num_ops", "0",
    "--mixup_prob", "0", "--random_erasing_prob", "0",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_end_with_the_same_parameters(tmp_path):
    port = free_port()
    environment = {
        **os.environ, "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }  # fmt: skip
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node_rank",
                str(node_rank),
                "--nproc_per_node",
                "1",
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                str(port),
                str(WORKER),
                str(tmp_path),
                *TRAIN_CCT_FLAGS,
                "--output_dir",
                str(tmp_path / "run"),
            ],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for node_rank in (0, 1)
    ]
    try:
        outputs = [agent.communicate(timeout=300) for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    for agent, (_, stderr) in zip(agents, outputs):
        assert agent.returncode == 0, stderr[-3000:]

    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [record["node_rank"] for record in records] == [0, 1]
    assert all(record["world"] == 2 for record in records)
    rank0, rank1 = (load_file(tmp_path / f"rank{rank}.safetensors") for rank in (0, 1))
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), name
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.equal(saved[name], tensor) for name, tensor in rank0.items())
    losses = [record["results"]["train_losses"] for record in records]
    assert len(losses[0]) == 4 and losses[0] != losses[1]  # each rank trained on its own batches
