"""DiT model sizes (Peebles & Xie 2023, Table 1) and the paper's names for them.

``DIT_PRESETS`` is the table: keyword arguments shared by diffusers' ``DiTTransformer2DModel`` and
:class:`~hf_compact.DiTTransformer3DModel`. Build from a name with :func:`dit_preset`::

    transformer = DiTTransformer2DModel(**dit_preset("DiT-S", in_channels=16, patch_size=1, num_embeds_ada_norm=10))

and name a model with :func:`dit_paper_name` (``DiTTransformer3DModel.paper_name`` calls it).
"""

from __future__ import annotations

from typing import Any

DIT_PRESETS: dict[str, dict[str, int]] = {
    "DiT-S": {"num_layers": 12, "num_attention_heads": 6, "attention_head_dim": 64},
    "DiT-B": {"num_layers": 12, "num_attention_heads": 12, "attention_head_dim": 64},
    "DiT-L": {"num_layers": 24, "num_attention_heads": 16, "attention_head_dim": 64},
    "DiT-XL": {"num_layers": 28, "num_attention_heads": 16, "attention_head_dim": 72},
}


def dit_preset(name: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of a DiT transformer of size ``name`` (a key of ``DIT_PRESETS``), with ``overrides``
    (e.g. ``in_channels``, ``patch_size``, ``num_embeds_ada_norm``) replacing or adding values.

    Raises:
        ValueError: ``name`` is not a key of ``DIT_PRESETS``.
    """
    if name not in DIT_PRESETS:
        raise ValueError(f"name: expected one of {sorted(DIT_PRESETS)}, got {name!r}.")
    return {**DIT_PRESETS[name], **overrides}


def dit_paper_name(config) -> str:
    """The DiT paper's name of a transformer config, ``"DiT-S/2"`` (size / patch; a tubelet patch reads
    ``"DiT-S/1x2x2"``) when its size is one of ``DIT_PRESETS``, else ``"DiT (12 layers, width 384)"``.

    Args:
        config: the config of a ``DiTTransformer2DModel`` or ``DiTTransformer3DModel``.
    """
    size = {
        "num_layers": config.num_layers,
        "num_attention_heads": config.num_attention_heads,
        "attention_head_dim": config.attention_head_dim,
    }
    preset = next((name for name, preset_size in DIT_PRESETS.items() if preset_size == size), None)
    if preset is not None:
        patch = config.patch_size if isinstance(config.patch_size, int) else "x".join(map(str, config.patch_size))
        return f"{preset}/{patch}"
    layers = f"{config.num_layers} layer" + ("s" if config.num_layers != 1 else "")
    return f"DiT ({layers}, width {config.num_attention_heads * config.attention_head_dim})"
