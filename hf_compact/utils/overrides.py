"""Config overrides given on the command line: one syntax for every script.

Both forms are read: ``"hidden_size=64,position_embedding_type=sine"`` (values read as YAML scalars, so numbers and
booleans get their type) and a JSON or YAML mapping (``'{"hidden_size": 64}'``, or a mapping in a ``--config``
file). Keys are checked against the names the config accepts, so a typo is named instead of ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence

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


def replace_file_sources(args, argv: Sequence[str], sources: Mapping[str, Sequence[str]]) -> None:
    """Flags that name one source among alternatives (e.g. a Hub dataset or an image folder): a source chosen on the
    command line replaces the one of the ``--config`` file, whose flags are reset to None in ``args``.

    Args:
        args: the parsed flags (changed in place).
        argv: the command line that was parsed.
        sources: source name -> its flags (destinations), e.g.
            ``{"hub": ("dataset_name", "dataset_config_name"), "folder": ("train_dir", "validation_dir")}``.
    """
    given = {token[2:].partition("=")[0].replace("-", "_") for token in argv if token.startswith("--")}
    chosen = [name for name, flags in sources.items() if given & set(flags)]
    if len(chosen) == 1:
        for name, flags in sources.items():
            if name not in chosen:
                for flag in flags:
                    setattr(args, flag, None)


def init_keywords(cls: type) -> list[str]:
    """The named keyword arguments of ``cls.__init__`` (a config's or a diffusers model's fields)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


__all__ = ["check_override_keys", "init_keywords", "parse_overrides", "replace_file_sources"]
