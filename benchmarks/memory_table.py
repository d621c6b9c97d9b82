"""Per-GPU memory of the weights, gradients and AdamW state of every ViTok, DiT and CCT preset under DDP, ZeRO-2
and FSDP (full sharding) on 8 GPUs, from the real parameter counts (models built on the ``meta`` device).

Bytes per parameter, as Accelerate trains with ``mixed_precision: bf16`` (autocast over float32 weights):
weights 4 (every parameter, frozen ones too), gradients 4 and AdamW state 8 (exp_avg + exp_avg_sq) for the trained
ones. DDP holds all of it on every GPU; ZeRO-2 shards gradients and optimizer state; FSDP (and ZeRO-3) shards all
three. Not counted: activations (batch- and checkpointing-dependent), the EMA copy (4 bytes per averaged parameter,
sharded like the weights under FSDP with ``ShardedEMAModel``), CUDA context and allocator slack.

    python benchmarks/memory_table.py          # the markdown table of docs/scaling.md
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DiTTransformer2DModel

from hf_compact import AutoencoderViTok, CCTConfig, CCTForImageClassification
from hf_compact.dit.presets import DIT_PRESETS

NUM_GPUS = 8
GIB = 1024**3
WEIGHT_BYTES, GRADIENT_BYTES, ADAMW_BYTES = 4, 4, 8

CCT_ROWS = {  # preset: number of classes of its recipe
    "cct_7_3x1_32": 10,
    "cct_7_7x2_224": 102,
    "cct_14_7x2_224": 1000,
    "cct_14_7x2_384": 1000,
}
VITOK_STAGE1 = ("S-B/16", "S-L/16", "S-B/4x8", "S-B/8x8", "S-B/4x16")
VITOK_DECODER_FINETUNE = ("v2-350M-f16x16", "v2-5B-f16x16")


@dataclass
class Row:
    model: str
    what: str
    parameters: int
    trained: int

    def per_gpu_gib(self, strategy: str) -> tuple[float, float, float]:
        """(weights, gradients, AdamW state) in GiB per GPU under ``"ddp"``, ``"zero2"`` or ``"fsdp"``."""
        weights = self.parameters * WEIGHT_BYTES
        gradients, optimizer = self.trained * GRADIENT_BYTES, self.trained * ADAMW_BYTES
        if strategy == "fsdp":
            weights /= NUM_GPUS
        if strategy in ("zero2", "fsdp"):
            gradients, optimizer = gradients / NUM_GPUS, optimizer / NUM_GPUS
        return weights / GIB, gradients / GIB, optimizer / GIB


def _count(model: torch.nn.Module, trained: torch.nn.Module | None = None) -> tuple[int, int]:
    total = sum(parameter.numel() for parameter in model.parameters())
    return total, sum(parameter.numel() for parameter in (trained or model).parameters())


def memory_rows() -> list[Row]:
    """One row per preset (models on the meta device: no memory, no initialisation)."""
    rows = []
    with torch.device("meta"):
        for name in VITOK_STAGE1:
            rows.append(Row(f"ViTok {name}", "stage 1 (all)", *_count(AutoencoderViTok.from_preset(name))))
        for name in VITOK_DECODER_FINETUNE:
            vae = AutoencoderViTok.from_preset(name)
            rows.append(Row(f"ViTok {name}", "decoder fine-tune", *_count(vae, vae.decoder)))
        for name, size in DIT_PRESETS.items():  # on ViTok S-B/16 latents: 16 channels, 16x16, learned sigma
            transformer = DiTTransformer2DModel(
                in_channels=16, out_channels=32, sample_size=16, patch_size=1, num_embeds_ada_norm=1000,
                norm_num_groups=1, **size,
            )  # fmt: skip
            rows.append(Row(f"{name}/1", "ImageNet 256", *_count(transformer)))
        for name, num_labels in CCT_ROWS.items():
            model = CCTForImageClassification(CCTConfig.from_preset(name, num_labels=num_labels))
            rows.append(Row(name, f"{num_labels} classes", *_count(model)))
    return rows


def markdown_table(rows: list[Row] | None = None) -> str:
    """The table of docs/scaling.md: GiB per GPU of weights + gradients + AdamW state."""
    lines = [
        f"| model | training | parameters (trained) | DDP: weights / grads / AdamW | DDP total | ZeRO-2 total "
        f"| FSDP x{NUM_GPUS}: weights / grads / AdamW | FSDP total |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows or memory_rows():
        ddp, zero2, fsdp = (row.per_gpu_gib(strategy) for strategy in ("ddp", "zero2", "fsdp"))
        counts = f"{row.parameters / 1e6:,.1f}M" + (
            f" ({row.trained / 1e6:,.1f}M)" if row.trained != row.parameters else ""
        )
        lines.append(
            f"| {row.model} | {row.what} | {counts} | {' / '.join(f'{value:.2f}' for value in ddp)} | "
            f"{sum(ddp):.2f} | {sum(zero2):.2f} | {' / '.join(f'{value:.2f}' for value in fsdp)} | {sum(fsdp):.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
