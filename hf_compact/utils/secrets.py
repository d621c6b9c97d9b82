"""The one filter every run configuration passes through before it is written, logged, tracked or uploaded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A key is secret when one of its words (split on ``_``, ``-``, ``.`` and case changes) is one of these.
SECRET_WORDS = frozenset(
    {"token", "secret", "secrets", "password", "passwd", "key", "apikey", "credential", "credentials"}
)
# Values that are credentials whatever their key: Hugging Face user / organisation access tokens.
SECRET_VALUE_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
REDACTED = "<redacted>"


def is_secret_key(key: str) -> bool:
    """``True`` for names such as ``hub_token``, ``wandb_api_key``, ``db-password``, ``clientSecret``."""
    words = re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", str(key))
    return any(word.lower() in SECRET_WORDS for word in words)


def redact_secrets(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` without credentials, safe for files, model cards, trackers and logs.

    Keys that name a token, secret, password or key (``hub_token``, ``wandb_api_key``...) are dropped, at any depth
    of nested mappings; any other string value that contains a Hugging Face access token (``hf_...``) has it replaced
    by ``"<redacted>"``. Keys such as ``tokenizer_name`` are kept: only whole words count.

    Args:
        config: a run configuration, e.g. ``vars(args)``.

    Returns:
        A new ``dict``; ``config`` is left untouched.
    """
    return {key: _redact_value(value) for key, value in config.items() if not is_secret_key(key)}


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact_secrets(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(item) for item in value)
    if isinstance(value, str):
        return SECRET_VALUE_PATTERN.sub(REDACTED, value)
    return value
