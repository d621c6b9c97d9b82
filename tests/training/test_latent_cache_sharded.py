"""The latent cache encoded by two processes (each its half of the rows) equals the one-process cache."""

import json
from pathlib import Path

import pytest
import torch
from latent_cache_shards import digits, tiny_vitok  # tests/distributed_workers is on pytest's path
from launch import run_two_processes

from hf_compact.data.latent_cache import LatentCacheDataset, build_latent_cache

WORKER = Path(__file__).parents[1] / "distributed_workers" / "latent_cache_shards.py"


@pytest.mark.slow
def test_two_process_cache_equals_one_process_cache(tmp_path):
    run_two_processes(WORKER, str(tmp_path / "sharded"), timeout=300)
    ranks = [json.loads((tmp_path / "sharded" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["path"] == ranks[1]["path"] == ranks[0]["again"]
    assert all(rank["reused"] and rank["length"] == 11 for rank in ranks)
    assert ranks[0]["moments_sum"] == ranks[1]["moments_sum"]  # both ranks read the same merged cache

    sharded = LatentCacheDataset(ranks[0]["path"])
    # 11 rows: rank 0 encodes rows 0-5, rank 1 rows 6-10, each in batches of 3 into one shard (a shard closes once
    # it holds at least shard_size=4 samples)
    assert sharded.metadata["shard_sizes"] == [6, 5]
    assert sharded.metadata["shards"] == ["shard-r00000-00000.safetensors", "shard-r00001-00000.safetensors"]
    assert not list(sharded.path.glob("rank-*.json"))
    single = build_latent_cache(tiny_vitok(), digits(), tmp_path / "single", batch_size=11, show_progress=False)
    assert sharded.path.name == single.path.name  # same (dataset, autoencoder) key
    for key in ("num_samples", "latent_shape", "deterministic", "class_names", "dataset_fingerprint",
                "autoencoder_fingerprint"):  # fmt: skip
        assert sharded.metadata[key] == single.metadata[key], key
    assert torch.equal(sharded.labels, single.labels)
    for index in range(len(single)):
        torch.testing.assert_close(sharded[index]["moments"], single[index]["moments"], rtol=1e-5, atol=1e-6)


def test_distributed_without_a_process_group_raises(tmp_path):
    with pytest.raises(ValueError, match="distributed"):
        build_latent_cache(tiny_vitok(), digits(), tmp_path, show_progress=False, distributed=True)
