"""One rank of tests/test_latent_cache_sharded.py (``torchrun --nproc_per_node 2``, gloo on the CPU).

Every rank encodes its half of 11 digits into ``sys.argv[1]`` with ``build_latent_cache(..., distributed=True)``,
then calls it again (the complete cache is reused). Each rank writes ``rank{R}.json`` with what it got.
"""

import json
import sys

import torch
import torch.distributed as dist

from hf_compact import AutoencoderViTok
from hf_compact.data import load_digits_dataset
from hf_compact.data.latent_cache import build_latent_cache


def tiny_vitok() -> AutoencoderViTok:
    torch.manual_seed(0)
    return AutoencoderViTok(
        latent_channels=4, patch_size=4, encoder_width=16, encoder_depth=1, encoder_heads=2, decoder_width=16,
        decoder_depth=1, decoder_heads=2, sample_size=16,
    )  # fmt: skip


def digits():
    return load_digits_dataset(image_size=16)["train"].select(range(11))


def main() -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    cache = build_latent_cache(tiny_vitok(), digits(), sys.argv[1], batch_size=3, shard_size=4, show_progress=False,
                               distributed=True)  # fmt: skip
    first_shard_mtime = (cache.path / cache.metadata["shards"][0]).stat().st_mtime_ns
    again = build_latent_cache(tiny_vitok(), digits(), sys.argv[1], show_progress=False, distributed=True)
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as handle:
        json.dump({
            "path": str(cache.path), "again": str(again.path), "length": len(cache),
            "reused": (again.path / again.metadata["shards"][0]).stat().st_mtime_ns == first_shard_mtime,
            "moments_sum": float(sum(cache[index]["moments"].double().sum() for index in range(len(cache)))),
        }, handle)  # fmt: skip
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
