"""Seeds derived from a run's seed and a position in the run, so that every (process, batch) or (epoch, item) gets
its own independent random stream and a resumed run repeats a straight one without replaying any generator."""

from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A well-mixed 32-bit seed from integer keys (e.g. base seed, epoch, item index), via numpy's
    ``SeedSequence``: nearby keys give unrelated seeds."""
    return int(np.random.SeedSequence([int(key) for key in keys]).generate_state(1)[0])


def seed_global_generators(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's generators with ``seed``: the CPU one and, when
    an accelerator is available, every device's (``torch.manual_seed``).

    Without an accelerator only the CPU generator is seeded, which is all ``torch.manual_seed`` changes there too: it
    would also queue seeds for CUDA, XPU and MTIA devices that cannot start, formatting a stack trace for each
    (0.2-0.6 ms a call, and the training engine calls this before every batch).
    """
    random.seed(seed)
    np.random.seed(seed)
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator is not None and not accelerator.is_available():
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)
