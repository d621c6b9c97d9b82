"""Building blocks shared by the models of hf-compact (one concept per module)."""

from .attention import Attention
from .layer_scale import LayerScale
from .mlp import GatedMlp, Mlp, build_mlp
from .normalization import FP32LayerNorm, RMSNorm, build_norm
from .rotary import (
    ROPE_TYPES,
    apply_rotary_embedding,
    axial_split,
    grid_positions,
    rotary_angles,
    rotary_axis_dims,
    rotary_cos_sin,
)
from .transformer_block import TransformerBlock

__all__ = [
    "ROPE_TYPES",
    "Attention",
    "FP32LayerNorm",
    "GatedMlp",
    "LayerScale",
    "Mlp",
    "RMSNorm",
    "TransformerBlock",
    "apply_rotary_embedding",
    "axial_split",
    "build_mlp",
    "build_norm",
    "grid_positions",
    "rotary_angles",
    "rotary_axis_dims",
    "rotary_cos_sin",
]
