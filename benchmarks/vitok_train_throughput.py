"""Training throughput of a ViTok stage-1 step (encode, sample, decode, MSE + KL + LPIPS, backward, AdamW) with
and without gradient checkpointing, and the peak memory of each.

Each configuration runs in its own process, so the peak memory (CUDA: ``max_memory_allocated``; CPU: peak resident
set size of the process) belongs to that configuration alone. LPIPS runs with a randomly initialised VGG16: its
cost does not depend on the weights, and none can be downloaded here.

    python benchmarks/vitok_train_throughput.py --preset S-B/16 --resolution 64 --batch_size 4
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from hf_compact.losses import LPIPS, ViTokLoss, ViTokLossWeights
from hf_compact.vitok import AutoencoderViTok


def measure(args: argparse.Namespace, gradient_checkpointing: bool) -> dict:
    """Images per second of the median of ``args.steps`` timed training steps (after ``args.warmup`` untimed
    ones); the median keeps a shared machine's load spikes out of the figure."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    autoencoder = AutoencoderViTok.from_preset(args.preset, sample_size=args.resolution).to(device)
    if gradient_checkpointing:
        autoencoder.enable_gradient_checkpointing()
    criterion = ViTokLoss(ViTokLossWeights(), LPIPS(allow_random_weights=True)).to(device)
    optimizer = torch.optim.AdamW(autoencoder.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-4)
    pixels = torch.rand(args.batch_size, 3, args.resolution, args.resolution, device=device) * 2 - 1
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with autocast:
            posterior = autoencoder.encode(pixels).latent_dist
            reconstruction = autoencoder.decode(posterior.sample()).sample
            loss = criterion(reconstruction, pixels, posterior)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(autoencoder.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    step_seconds = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_seconds.append(time.perf_counter() - started)
    seconds = statistics.median(step_seconds)
    if device.type == "cuda":
        peak_memory_gib = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak_memory_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "preset": args.preset,
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "gradient_checkpointing": gradient_checkpointing,
        "parameters_millions": round(sum(p.numel() for p in autoencoder.parameters()) / 1e6, 2),
        "images_per_second": round(args.batch_size / seconds, 3),
        "median_seconds_per_step": round(seconds, 3),
        "peak_memory_gib": round(peak_memory_gib, 3),
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS",
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="S-B/16")
    parser.add_argument("--resolution", type=int, default=256 if torch.cuda.is_available() else 64)
    parser.add_argument("--batch_size", type=int, default=32 if torch.cuda.is_available() else 4)
    parser.add_argument("--steps", type=int, default=20 if torch.cuda.is_available() else 5)
    parser.add_argument("--warmup", type=int, default=3 if torch.cuda.is_available() else 1)
    parser.add_argument("--single", choices=("plain", "checkpointing"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.single is not None:
        print(json.dumps(measure(args, gradient_checkpointing=args.single == "checkpointing")))
        return []
    forwarded = list(argv if argv is not None else sys.argv[1:])
    rows = []
    for mode in ("plain", "checkpointing"):
        completed = subprocess.run(
            [sys.executable, __file__, *forwarded, "--single", mode],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    for row in rows:
        print(json.dumps(row))
    if len(rows) == 2:
        print(
            "gradient checkpointing: "
            f"{rows[1]['images_per_second'] / rows[0]['images_per_second']:.2f}x the throughput, "
            f"{rows[1]['peak_memory_gib'] / rows[0]['peak_memory_gib']:.2f}x the peak memory"
        )
    return rows


if __name__ == "__main__":
    main()
