"""Config overrides given on the command line: one syntax for every script.

Both forms are read: ``"hidden_size=64,position_embedding_type=sine"`` (values read as YAML scalars, so numbers and
booleans get their type) and a JSON or YAML mapping (``'{"hidden_size": 64}'``, or a mapping in a ``--config``
file). Keys are checked against the names the config accepts, so a typo is named instead of ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml


def parse_overrides(overrides: str | Mapping | None, flag: str = "--config_overrides") -> dict:
    """``"k=v,k2=v2"``, a JSON / YAML mapping string, a mapping or None -> a dict (None -> ``{}``).

    Raises:
        ValueError: naming ``flag``, for text that is neither form.
    """
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if not isinstance(overrides, str):
        raise TypeError(f"{flag}: expected 'name=value,...' or a mapping, got {type(overrides).__name__}.")
    text = overrides.strip()
    if text.startswith("{"):
        try:
            parsed = yaml.safe_load(text)  # JSON is YAML
        except yaml.YAMLError as error:
            raise ValueError(f"{flag}: expected a JSON / YAML mapping, got {overrides!r} ({error}).") from error
        if not isinstance(parsed, dict):
            raise ValueError(f"{flag}: expected a mapping, got {overrides!r}.")
        return parsed
    parsed = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ValueError(
                f"{flag}: expected 'name=value' items separated by commas, or a JSON / YAML mapping, got {item!r}."
            )
        parsed[key.strip()] = yaml.safe_load(value)
    return parsed


def check_override_keys(overrides: Mapping, valid_keys: Iterable[str], flag: str = "--config_overrides") -> None:
    """Raise a ``ValueError`` naming ``flag``, the unknown keys and the valid ones."""
    valid = set(valid_keys)
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"{flag}: unknown config keys {unknown}; valid keys are {sorted(valid)}.")


def replace_file_sources(args, argv: Sequence[str], sources: Mapping[str, Mapping[str, Any]]) -> None:
    """Flags that name one data source among alternatives (a Hub dataset or a local folder...): a source chosen on
    the command line replaces the one of the ``--config`` file, whose flags are reset in ``args``.

    Args:
        args: the parsed flags (changed in place).
        argv: the command line that was parsed.
        sources: the flag that chooses each source -> the flags of that source and the value each takes when
            another source is chosen, e.g. ``{"dataset_name": {"dataset_name": None, "image_column_name": "image"},
            "train_dir": {"train_dir": None, "validation_dir": None}}``. Flags given on the command line are kept.
    """
    given = {token[2:].partition("=")[0].replace("-", "_") for token in argv if token.startswith("--")}
    chosen = [flag for flag in sources if flag in given]
    if len(chosen) != 1:
        return
    for flag, resets in sources.items():
        if flag != chosen[0]:
            for name, value in resets.items():
                if name not in given:
                    setattr(args, name, value)


def init_keywords(cls: type) -> list[str]:
    """The named keyword arguments of ``cls.__init__`` (a config's or a diffusers model's fields)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


__all__ = ["check_override_keys", "init_keywords", "parse_overrides", "replace_file_sources"]
