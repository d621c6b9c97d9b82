"""Training and inference throughput of hf-compact's CCT against lucidrains' vit-pytorch CCT, same weights.

Both models are ``cct_7_3x1_32`` (CIFAR-10 CCT-7/3x1, learnable position embeddings). The vit-pytorch model keeps
the official parameter names, so its weights go through ``hf_compact.cct.convert_cct_original.convert_state_dict``
into ours, and the script first checks that both give the same logits. Then, at batch 128, it times inference
(``torch.no_grad``, eval mode) and training steps (forward, cross-entropy, backward, AdamW step), eager and with
``torch.compile``, alternating the models so that machine load hits all alike, and prints images/s (fastest run) and
the ratio ours / vit-pytorch. "ours" is the model as a user gets it (transformers' default ``"sdpa"`` attention);
in eager mode a third model, "ours + kernel", is the same model with ``attn_implementation="cpu_dropout"``, the
opt-in CPU attention kernel of ``cpu_helpers/dropout_attention.py`` (registered with transformers'
``AttentionInterface`` by this script; under ``torch.compile`` it steps aside for SDPA, so it has no compiled row).
It also measures the machine's fp32 matmul rate in every round of the same run and reports each model's achieved
FLOP/s as a share of it (FLOPs counted with ``torch.utils.flop_counter``): the share of the attainable rate each
model reaches. Pin the run for stable numbers, e.g.
``taskset -c 1 python benchmarks/cct_throughput.py --num_threads 1``.

At batch 128 most activations are 32-96 MiB, above glibc's largest ``mmap`` threshold, so by default every one of
them is a fresh mapping that the kernel faults in and zeroes (system time). ``--keep_freed_cpu_memory`` lets glibc
reuse freed blocks instead (``cpu_helpers/freed_memory.py``), which speeds up every model; vit-pytorch, which
allocates more (attention scores, softmax), gains more from it.

vit-pytorch's package ``__init__`` imports torchvision (broken here), so install it outside the project and point
``--vit_pytorch_dir`` at it; ``vit_pytorch/cct.py`` is loaded by file path:

    pip install --no-deps vit-pytorch einops --target /tmp/vit_pytorch_pkg
    python benchmarks/cct_throughput.py --vit_pytorch_dir /tmp/vit_pytorch_pkg
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hf_compact.cct import CCTConfig, CCTForImageClassification
from hf_compact.cct.convert_cct_original import convert_state_dict

from cpu_helpers import dropout_attention
from cpu_helpers.freed_memory import keep_freed_cpu_memory

PRESET = "cct_7_3x1_32"


def load_vit_pytorch_cct(package_dir: Path):
    cct_file = package_dir / "vit_pytorch" / "cct.py"
    if not cct_file.is_file():
        raise FileNotFoundError(
            f"--vit_pytorch_dir: expected {cct_file} (pip install --no-deps vit-pytorch einops --target DIR)."
        )
    sys.path.insert(0, str(package_dir))  # for einops
    spec = importlib.util.spec_from_file_location("vit_pytorch_cct", cct_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LogitsOnly(nn.Module):
    """Our model returning the logits tensor, like vit-pytorch's."""

    def __init__(self, model: CCTForImageClassification):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def build_models(vit_pytorch_cct) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    theirs = vit_pytorch_cct.cct_7(
        img_size=32, kernel_size=3, n_conv_layers=1, num_classes=10, positional_embedding="learnable"
    )
    config = CCTConfig.from_preset(PRESET)
    ours = CCTForImageClassification(config)
    ours.load_state_dict(convert_state_dict(theirs.state_dict(), config))
    return LogitsOnly(ours), theirs


def matmul_rate(size: int = 1024, repeats: int = 5) -> float:
    """The machine's fp32 matmul rate in FLOP/s: the fastest of `repeats` `size`^3 products."""
    left, right = torch.randn(size, size), torch.randn(size, size)
    left @ right
    fastest = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        left @ right
        fastest = min(fastest, time.perf_counter() - started)
    return 2 * size**3 / fastest


def flops_per_image(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(inference, training) FLOPs per image: forward, and forward + backward of the cross-entropy loss."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    inference = counter.get_total_flops()
    model.train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(images), labels).backward()
    model.zero_grad(set_to_none=True)
    return inference / images.shape[0], counter.get_total_flops() / images.shape[0]


def time_inference(model: nn.Module, images: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        started = time.perf_counter()
        model(images)
    return time.perf_counter() - started


def make_training_step(model: nn.Module):
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)

    def step(images: torch.Tensor, labels: torch.Tensor) -> float:
        model.train()
        started = time.perf_counter()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    return step


def measure(
    models: dict[str, nn.Module], batch_size: int, warmup: int, repeats: int, inference_repeats: int
) -> tuple[dict[str, tuple[float, float]], float]:
    """images/s (inference, training) per model, and the matmul rate (FLOP/s), each from its fastest timed run.

    Every round runs, in turn, each model (`inference_repeats` forward passes, then one training step) and the matmul
    rate measurement, so that load from other processes hits all of them alike."""
    images = torch.randn(batch_size, 3, 32, 32)
    labels = torch.randint(0, 10, (batch_size,))
    steps = {name: make_training_step(model) for name, model in models.items()}
    inference = {name: [] for name in models}
    training = {name: [] for name in models}
    peak = 0.0
    for round_index in range(warmup + repeats):
        for name, model in models.items():
            inference_seconds = [time_inference(model, images) for _ in range(inference_repeats)]
            training_seconds = steps[name](images, labels)
            if round_index >= warmup:
                inference[name].extend(inference_seconds)
                training[name].append(training_seconds)
        peak = max(peak, matmul_rate())
    # The fastest run is the one least disturbed by other processes on a shared machine (as `timeit` reports).
    throughput = {name: (batch_size / min(inference[name]), batch_size / min(training[name])) for name in models}
    return throughput, peak


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vit_pytorch_dir", type=Path, default=Path("/tmp/vit_pytorch_pkg"))
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=1, help="Untimed rounds (compilation happens here).")
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds; the fastest is reported.")
    parser.add_argument("--inference_repeats", type=int, default=3, help="Timed forward passes per model and round.")
    parser.add_argument("--num_threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--no_compile", action="store_true", help="Only eager mode.")
    parser.add_argument(
        "--keep_freed_cpu_memory", action="store_true",
        help="Let glibc reuse freed large blocks instead of unmapping them (both models, whole process).",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.keep_freed_cpu_memory and not keep_freed_cpu_memory():
        raise RuntimeError("--keep_freed_cpu_memory: needs glibc's mallopt, which this C library does not have.")
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)

    ours, theirs = build_models(load_vit_pytorch_cct(args.vit_pytorch_dir))
    ours.eval(), theirs.eval()
    with torch.no_grad():
        check = torch.randn(8, 3, 32, 32)
        difference = (ours(check) - theirs(check)).abs().max().item()
    num_parameters = sum(parameter.numel() for parameter in ours.parameters())
    print(f"{PRESET}: {num_parameters:,} parameters; max |logit difference| = {difference:.2e}")
    if difference > 1e-4:
        raise RuntimeError(f"the two models disagree (max logit difference {difference:.2e}); the comparison is void.")

    allocator = "freed blocks kept for reuse" if args.keep_freed_cpu_memory else "default allocator"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, {allocator}")
    images, labels = torch.randn(args.batch_size, 3, 32, 32), torch.randint(0, 10, (args.batch_size,))
    # Same architecture, so one count for all; counted on vit-pytorch's plain matmuls (the flop counter has no
    # formula for every fused CPU attention kernel that ours may dispatch to).
    flops = flops_per_image(theirs, images, labels)
    print(f"GFLOP per image: inference {flops[0] / 1e9:.3f}, training {flops[1] / 1e9:.3f}")
    with_kernel = copy.deepcopy(ours)
    with_kernel.model.set_attn_implementation(dropout_attention.register())
    modes = ["eager"] if args.no_compile else ["eager", "compile"]
    results = {}
    print(
        f"{'mode':8s} {'':16s} {'hf-compact':>12s} {'vit-pytorch':>12s} {'ratio':>7s}  share of matmul rate "
        "(ours / theirs)",
        flush=True,
    )
    for mode in modes:
        models = {"ours": ours, "ours + kernel": with_kernel, "theirs": theirs}
        if mode == "compile":
            models = {name: torch.compile(models[name]) for name in ("ours", "theirs")}
        throughput, peak = measure(models, args.batch_size, args.warmup, args.repeats, args.inference_repeats)
        results[f"{mode}_matmul_rate"] = peak
        print(f"{mode:8s} fp32 matmul rate {peak / 1e9:.1f} GFLOP/s (fastest 1024^3 product, measured in the rounds)")
        for index, task in enumerate(("inference", "training")):
            theirs_rate = throughput["theirs"][index]
            for name in [name for name in models if name != "theirs"]:
                ours_rate = throughput[name][index]
                key = f"{mode}_{task}" + ("_kernel" if name == "ours + kernel" else "")
                results[f"{key}_ratio"] = ours_rate / theirs_rate
                ours_share, theirs_share = ours_rate * flops[index] / peak, theirs_rate * flops[index] / peak
                results[f"{key}_matmul_share"] = (ours_share, theirs_share)
                label = f"{task} img/s" + (" +k" if name == "ours + kernel" else "")
                print(
                    f"{mode:8s} {label:16s} {ours_rate:12.1f} {theirs_rate:12.1f} {ours_rate / theirs_rate:6.2f}x"
                    f"  {ours_share:6.1%} / {theirs_share:6.1%}",
                    flush=True,
                )
    summary = [
        f"{mode} {task}{' (+ kernel)' if kernel else ''} {results[f'{mode}_{task}{kernel}_ratio']:.2f}x"
        for mode in modes
        for task in ("training", "inference")
        for kernel in ("", "_kernel")
        if f"{mode}_{task}{kernel}_ratio" in results
    ]
    print("ratios (ours / vit-pytorch): " + ", ".join(summary))
    return results


if __name__ == "__main__":
    main()
