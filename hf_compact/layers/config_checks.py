"""Type and range checks for model configuration fields, raised where the config is built and naming the field."""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection


def check_int(name: str, value, minimum: int = 1) -> None:
    """Raise unless ``value`` is an int (not a bool, not ``"32"`` or ``32.0``) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}.")


def check_positive_number(name: str, value) -> None:
    """Raise unless ``value`` is a finite real number greater than zero."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r} ({type(value).__name__}).")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value}.")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {value!r} ({type(value).__name__}).")


def check_choice(name: str, value, choices: Collection) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}.")
