"""Command-line flags that can also come from a YAML file (``--config FILE.yaml``)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import yaml


def parse_args_with_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with ``parser``, after applying defaults from ``--config FILE.yaml``.

    The YAML file is a flat mapping whose keys are the parser's flag names (``learning_rate`` or
    ``learning-rate`` for ``--learning_rate``). Precedence: explicit command-line flags, then the YAML
    file, then the parser's defaults. Unknown keys raise a ``ValueError`` that lists them, so a typo in a
    recipe never silently falls back to a default.
    """
    parser.add_argument("--config", type=Path, default=None, help="YAML file whose keys are these flags.")
    config_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    config_parser.add_argument("--config", type=Path, default=None)
    known, _ = config_parser.parse_known_args(argv)
    if known.config is not None:
        flags = load_flag_file(known.config, parser)
        parser.set_defaults(**flags)
        for action in parser._actions:
            if action.dest in flags:
                action.required = False  # a value from the recipe satisfies a required flag
    return parser.parse_args(argv)


def namespace_to_dataclasses(parser, namespace: argparse.Namespace) -> tuple:
    """The instances of a ``transformers.HfArgumentParser``'s dataclasses, from a namespace it parsed (e.g. with
    :func:`parse_args_with_config`, after any change to the namespace); ``--config`` and other extra keys are left
    out."""
    return tuple(
        dataclass_type(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(dataclass_type) if f.init})
        for dataclass_type in parser.dataclass_types
    )


def load_flag_file(path: Path, parser: argparse.ArgumentParser) -> dict:
    """Read a YAML recipe and map its keys onto ``parser``'s destinations (``-`` and ``_`` are equal)."""
    if not path.is_file():
        raise FileNotFoundError(f"--config: expected a YAML file, got {str(path)!r}, which does not exist.")
    with open(path, encoding="utf-8") as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ValueError(
            f"--config: expected a mapping of flag names to values in {path}, got {type(values).__name__}."
        )
    destinations = {action.dest for action in parser._actions}
    flags = {str(key).replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(flags) - destinations)
    if unknown:
        raise ValueError(f"--config: {path} has keys that are not flags of this script: {unknown}.")
    return flags
