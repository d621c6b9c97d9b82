"""State-dict plumbing shared by the checkpoint converters and the pretrained-weight loaders: key renaming,
wrapper-prefix stripping and the one check that converted tensors fit a model."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import torch

_MAX_LISTED_KEYS = 8


def rename_keys(state_dict: Mapping[str, torch.Tensor], rules: Iterable[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Applies regex ``(pattern, replacement)`` rules, in order, to every key; values are kept as they are."""
    rules = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed = {}
    for key, value in state_dict.items():
        for pattern, replacement in rules:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


def strip_prefixes(state_dict: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
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
    state_dict: Mapping[str, torch.Tensor],
    expected: torch.nn.Module | Mapping[str, Sequence[int] | torch.Tensor],
    source: str,
    target: str | None = None,
) -> None:
    """Raises ``ValueError`` naming the missing, unexpected and mis-shaped keys of ``state_dict``.

    Args:
        state_dict: tensors, already renamed to the keys of the module they are meant for.
        expected: that module (its ``state_dict()`` gives the keys and shapes), or a mapping from key to shape
            or to a reference tensor (e.g. from a model built on the ``meta`` device, or part of a model).
        source: what the tensors came from, used in the message (e.g. ``"checkpoint 'x.pt'"``).
        target: what they are meant for, used in the message (default: the module's class name).
    """
    if isinstance(expected, torch.nn.Module):
        target = target or type(expected).__name__
        expected_shapes = {key: tuple(value.shape) for key, value in expected.state_dict().items()}
    else:
        target = target or "the model"
        expected_shapes = {
            key: tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)
            for key, value in expected.items()
        }
    missing = sorted(expected_shapes.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected_shapes.keys())
    mis_shaped = sorted(
        f"{key}: expected {expected_shapes[key]}, got {tuple(state_dict[key].shape)}"
        for key in expected_shapes.keys() & state_dict.keys()
        if tuple(state_dict[key].shape) != expected_shapes[key]
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if mis_shaped:
        problems.append(f"mis-shaped keys: {_listed(mis_shaped)}")
    if problems:
        raise ValueError(f"{source} does not fit {target}; " + "; ".join(problems) + ".")
