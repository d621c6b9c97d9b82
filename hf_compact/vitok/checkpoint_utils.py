"""Key renaming and validation shared by the ViTok checkpoint converters."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

_MAX_LISTED_KEYS = 8


def rename_keys(
    state_dict: Mapping[str, torch.Tensor], rules: Iterable[tuple[str, str]]
) -> dict[str, torch.Tensor]:
    """Applies regex ``(pattern, replacement)`` rules, in order, to every key; values are kept as they are."""
    rules = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed = {}
    for key, value in state_dict.items():
        for pattern, replacement in rules:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


def strip_prefixes(
    state_dict: Mapping[str, torch.Tensor], prefixes: Iterable[str]
) -> dict[str, torch.Tensor]:
    """Removes wrapper prefixes such as ``module.`` (DDP) or ``_orig_mod.`` (torch.compile) from every key."""
    prefixes = tuple(prefixes)
    stripped = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        stripped[key] = value
    return stripped


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED_KEYS else "")


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor], expected_shapes: Mapping[str, torch.Size], source: str
) -> None:
    """Raises ``ValueError`` naming missing, unexpected and mis-shaped keys of ``state_dict``.

    Args:
        state_dict: converted tensors (already renamed to this package's keys).
        expected_shapes: key -> shape the model expects.
        source: what the tensors came from, used in the message (e.g. ``"checkpoint 'x.pt'"``).
    """
    missing = sorted(set(expected_shapes) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected_shapes))
    mismatched = sorted(
        f"{key}: expected {tuple(expected_shapes[key])}, got {tuple(state_dict[key].shape)}"
        for key in set(state_dict) & set(expected_shapes)
        if tuple(state_dict[key].shape) != tuple(expected_shapes[key])
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if mismatched:
        problems.append(f"mis-shaped keys: {_listed(mismatched)}")
    if problems:
        raise ValueError(
            f"{source} does not match the AutoencoderViTok configuration; " + "; ".join(problems)
        )
