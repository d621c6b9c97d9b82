"""The one split policy of the training recipes (no import beyond the standard library, so that scripts can use
its defaults in their flags before any heavy import).

The evaluation split is the first of :data:`EVAL_SPLIT_NAMES` that the dataset has; without one,
:data:`HELD_OUT_FRACTION` of the training split (a seeded random draw) is held out for the evaluation.
"""

from __future__ import annotations

EVAL_SPLIT_NAMES = ("validation", "valid", "test")
HELD_OUT_FRACTION = 0.1


def split_for_evaluation(splits, held_out_fraction: float = HELD_OUT_FRACTION, seed: int = 0) -> tuple:
    """``(train, evaluation)``: the dataset's own evaluation split, or ``held_out_fraction`` of ``train`` drawn
    with ``seed`` (see the module docstring)."""
    if "train" not in splits:
        raise ValueError(f"dataset: expected a 'train' split, got {list(splits)}.")
    eval_split = next((name for name in EVAL_SPLIT_NAMES if name in splits), None)
    if eval_split is not None:
        return splits["train"], splits[eval_split]
    if not 0 < held_out_fraction < 1:
        raise ValueError(
            f"train_val_split: expected a held-out fraction in (0, 1) since the dataset has no split named "
            f"{' / '.join(EVAL_SPLIT_NAMES)}, got {held_out_fraction}."
        )
    held_out = splits["train"].train_test_split(test_size=held_out_fraction, seed=seed)
    return held_out["train"], held_out["test"]


def truncate(dataset, max_samples: int | None, seed: int | None = None):
    """The first ``max_samples`` items (of a ``seed``-shuffled order when a seed is given); all of them for None."""
    if max_samples is None:
        return dataset
    if seed is not None:
        dataset = dataset.shuffle(seed=seed)
    return dataset.select(range(min(max_samples, len(dataset))))


__all__ = ["EVAL_SPLIT_NAMES", "HELD_OUT_FRACTION", "split_for_evaluation", "truncate"]
