"""Kept for imports of ``hf_compact.training_utils.secrets``; the filter lives in :mod:`hf_compact.utils.secrets`."""

from hf_compact.utils.secrets import REDACTED, is_secret_key, redact_secrets

__all__ = ["REDACTED", "is_secret_key", "redact_secrets"]
