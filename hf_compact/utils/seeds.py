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
    """Seed Python's ``random``, NumPy's global generator and torch's CPU and CUDA generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every CUDA device too
