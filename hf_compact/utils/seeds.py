"""Seeds derived from several integer keys, so that every (run, epoch, item) or (run, process, step) gets its own
independent random stream and a resumed run repeats a straight one."""

from __future__ import annotations

import numpy as np


def derive_seed(*keys: int) -> int:
    """A well-mixed 32-bit seed from integer keys (e.g. base seed, epoch, item index), via numpy's
    ``SeedSequence``: nearby keys give unrelated seeds."""
    return int(np.random.SeedSequence([int(key) for key in keys]).generate_state(1)[0])
