"""DiT model sizes (Peebles & Xie 2023, Table 1) as keyword arguments of the DiT transformers."""

from __future__ import annotations

DIT_PRESETS: dict[str, dict[str, int]] = {
    "DiT-S": {"num_layers": 12, "num_attention_heads": 6, "attention_head_dim": 64},
    "DiT-B": {"num_layers": 12, "num_attention_heads": 12, "attention_head_dim": 64},
    "DiT-L": {"num_layers": 24, "num_attention_heads": 16, "attention_head_dim": 64},
    "DiT-XL": {"num_layers": 28, "num_attention_heads": 16, "attention_head_dim": 72},
}
