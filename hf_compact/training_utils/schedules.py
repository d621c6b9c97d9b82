"""Learning-rate schedules used by the training scripts."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_learning_rate(
    step: int,
    peak_lr: float,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cooldown_steps: int = 0,
    warmup_start_lr: float = 0.0,
    min_lr: float = 0.0,
) -> float:
    """Learning rate after ``step`` optimizer updates: linear warmup, half-cosine decay, flat cooldown.

    - ``step < num_warmup_steps``: linear from ``warmup_start_lr`` (step 0) towards ``peak_lr``;
    - then a half cosine from ``peak_lr`` (at ``num_warmup_steps``) down to ``min_lr``, reached at
      ``num_training_steps - num_cooldown_steps``;
    - the last ``num_cooldown_steps`` steps stay at ``min_lr``.

    This is timm's ``CosineLRScheduler`` with ``warmup_prefix=True`` followed by its cooldown epochs (the official
    CCT recipes train ``epochs + cooldown_epochs`` epochs, the last ones at ``min_lr``), counted in optimizer steps
    rather than epochs.
    """
    decay_end = num_training_steps - num_cooldown_steps
    if step < num_warmup_steps:
        return warmup_start_lr + (peak_lr - warmup_start_lr) * step / num_warmup_steps
    if step >= decay_end:
        return min_lr
    progress = (step - num_warmup_steps) / (decay_end - num_warmup_steps)
    return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def get_cosine_schedule_with_warmup_and_cooldown(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cooldown_steps: int = 0,
    warmup_start_lr: float = 0.0,
    min_lr: float = 0.0,
    last_epoch: int = -1,
) -> LambdaLR:
    """A ``LambdaLR`` that follows [`cosine_learning_rate`] with every param group's ``lr`` as its peak.

    ``warmup_start_lr`` and ``min_lr`` are absolute learning rates (as in timm and the official CCT recipes), the
    same for every param group. Call ``scheduler.step()`` once per optimizer update.

    Args:
        optimizer: the optimizer; the ``lr`` of each param group at construction is its peak learning rate.
        num_warmup_steps: updates of linear warmup.
        num_training_steps: all updates of the run, cooldown included.
        num_cooldown_steps: final updates held at ``min_lr``.
        warmup_start_lr: learning rate of the first update.
        min_lr: learning rate at the end of the cosine and during the cooldown.
        last_epoch: index of the last update when resuming (``LambdaLR`` semantics).
    """
    if num_training_steps <= 0:
        raise ValueError(f"num_training_steps: expected a positive number of updates, got {num_training_steps}.")
    if num_warmup_steps < 0 or num_cooldown_steps < 0:
        raise ValueError(
            f"num_warmup_steps, num_cooldown_steps: expected non-negative counts, got {num_warmup_steps} and "
            f"{num_cooldown_steps}."
        )
    if num_warmup_steps + num_cooldown_steps > num_training_steps:
        raise ValueError(
            f"num_warmup_steps + num_cooldown_steps: expected at most num_training_steps={num_training_steps}, got "
            f"{num_warmup_steps} + {num_cooldown_steps}."
        )

    def multiplier(peak_lr: float):
        def lr_lambda(step: int) -> float:
            learning_rate = cosine_learning_rate(
                step,
                peak_lr,
                num_warmup_steps,
                num_training_steps,
                num_cooldown_steps,
                warmup_start_lr,
                min_lr,
            )
            return learning_rate / peak_lr

        return lr_lambda

    peak_lrs = [group["initial_lr"] if "initial_lr" in group else group["lr"] for group in optimizer.param_groups]
    if any(peak_lr <= 0 for peak_lr in peak_lrs):
        raise ValueError(f"optimizer: expected a positive lr in every param group, got {peak_lrs}.")
    return LambdaLR(optimizer, [multiplier(peak_lr) for peak_lr in peak_lrs], last_epoch=last_epoch)


__all__ = ["cosine_learning_rate", "get_cosine_schedule_with_warmup_and_cooldown"]
