"""Multiply-accumulate counts of one forward pass, measured with `torch.utils.flop_counter.FlopCounterMode`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

# Batched matmuls are the attention score (q k^T) and weighted-sum (attn v) products in every model of this
# package (projections and MLPs are Linear layers, counted as mm/addmm).
_ATTENTION_OPS = ("aten.bmm", "aten.baddbmm")


@dataclass(frozen=True)
class MacCount:
    """Multiply-accumulates of one forward pass: `total` and the part spent in attention matmuls.

    `total - attention` is the "conv + linear" count that ptflops/thop-style tools (and the CCT README) report.
    """

    total: int
    attention: int

    @property
    def without_attention(self) -> int:
        return self.total - self.attention


@torch.no_grad()
def count_macs(forward: Callable[[], object]) -> MacCount:
    """Runs `forward()` once under `FlopCounterMode` and returns its MACs (FLOPs / 2).

    PyTorch's fused CPU attention kernels are not in the flop counter's formula table, so the count runs with the
    math SDPA backend, whose matmuls are counted; the result does not depend on the backend a model would pick.

    Example:
        >>> model = CCTForImageClassification(CCTConfig.from_preset("cct_7_3x1_32"))
        >>> count_macs(lambda: model(torch.zeros(1, 3, 32, 32))).total / 1e9  # 1.18 GMACs, 0.95 without attention
    """
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        forward()
    flops_by_op = counter.get_flop_counts()["Global"]
    attention_flops = sum(flops for op, flops in flops_by_op.items() if str(op) in _ATTENTION_OPS)
    return MacCount(total=counter.get_total_flops() // 2, attention=attention_flops // 2)
