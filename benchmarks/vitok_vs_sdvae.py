"""ViTok S-B/16 vs the Stable Diffusion VAE (and the ViTok-v2 350M autoencoder) at 256x256.

Prints, per model: parameters, forward GMACs of encode + decode (multiply-accumulates including the attention
matmuls, the convention of the ViTok paper's "GFLOPs"), wall time of encode + decode per image (batch 1, median)
and peak memory, plus ratios against SD-VAE. All models use random weights; both S-B/16 and SD-VAE store 4096
latent floats per 256x256 image (16x16x16 vs 4x32x32).

    python benchmarks/vitok_vs_sdvae.py [--device cpu|cuda] [--repeats 5]

On CPU the peak is the process's peak resident memory during encode + decode (reset with /proc/self/clear_refs),
on CUDA ``torch.cuda.max_memory_allocated``. Each model is measured in its own process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

RESOLUTION = 256


def build_model(name: str) -> torch.nn.Module:
    if name == "SD-VAE (AutoencoderKL)":
        from diffusers import AutoencoderKL

        # Stable Diffusion v1 VAE configuration (f8, 4 channels).
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            sample_size=RESOLUTION,
        )
    from hf_compact.vitok import AutoencoderViTok

    preset = {"ViTok S-B/16": "S-B/16", "ViTok-v2 350M f16x16": "v2-350M-f16x16"}[name.split(" [")[0]]
    return AutoencoderViTok.from_preset(preset)


def encode_decode(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    return model.decode(model.encode(image).latent_dist.mode()).sample


def _rss_peak_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")


def measure(name: str, dtype_name: str, device: str, repeats: int, queue) -> None:
    torch.manual_seed(0)
    dtype = getattr(torch, dtype_name)
    model = build_model(name).to(device=device).eval()
    if dtype != torch.float32:
        model = model.to(dtype=dtype)
    image = (torch.rand(1, 3, RESOLUTION, RESOLUTION, device=device) * 2 - 1).to(dtype)
    with torch.no_grad():
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            encode_decode(model, image)  # the math backend exposes the attention matmuls to the counter
        encode_decode(model, image)  # warm-up
        _reset_peak(device)
        times = []
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            encode_decode(model, image)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_peak_mb()
    queue.put(
        {
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "gmacs": counter.get_total_flops() / 2 / 1e9,
            "seconds": statistics.median(times),
            "peak_mb": peak,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs = [
        ("SD-VAE (AutoencoderKL)", "float32"),
        ("ViTok S-B/16", "float32"),
        ("ViTok-v2 350M f16x16", "float32"),
        ("ViTok-v2 350M f16x16", "bfloat16"),
    ]
    context = multiprocessing.get_context("spawn")
    print(f"device: {args.device}, threads: {torch.get_num_threads()}, input 1x3x{RESOLUTION}x{RESOLUTION}")
    header = (
        f"{'model':<24} {'dtype':<9} {'params (M)':>10} {'GMACs':>8} {'enc+dec (s)':>11} {'peak (MB)':>10} "
        f"{'speed-up vs SD-VAE':>18} {'MAC ratio':>9}"
    )
    print(header + "\n" + "-" * len(header), flush=True)
    baseline = None
    for name, dtype in runs:
        queue = context.Queue()
        process = context.Process(target=measure, args=(name, dtype, args.device, args.repeats, queue))
        process.start()
        result = queue.get()
        process.join()
        baseline = baseline or result
        print(
            f"{name:<24} {dtype:<9} {result['params_m']:>10.2f} {result['gmacs']:>8.1f} {result['seconds']:>11.3f} "
            f"{result['peak_mb']:>10.0f} {baseline['seconds'] / result['seconds']:>17.2f}x "
            f"{baseline['gmacs'] / result['gmacs']:>8.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
