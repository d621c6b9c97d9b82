"""``DiTTransformer3DModel``: a class-conditional DiT over (T, H, W) video-latent grids.

The 3-D counterpart of diffusers' ``DiTTransformer2DModel`` (same conditioning, same learned-sigma output, same
``num_embeds_ada_norm`` null class), following DiT (Peebles & Xie, 2023): tubelet patch embedding, fixed 3-D
sin-cos position embedding, adaLN-Zero blocks conditioned on ``timestep_embedding + class_embedding`` (each
modulation is ``Linear(SiLU(.))``), and an adaptive final layer. The building blocks are shared: attention and MLP
from ``hf_compact.layers``, timestep/label embeddings and adaptive norms from diffusers.

As diffusers' own transformers: ``compile_repeated_blocks`` compiles the ``DiTBlock3D`` s, ``set_attention_backend``
picks the attention kernel, ``enable_layerwise_casting`` / ``enable_group_offload`` apply, and LoRA adapters come
through ``add_adapter`` / ``save_lora_adapter`` / ``load_lora_adapter`` (``peft``).
"""

from __future__ import annotations

import numbers

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.embeddings import CombinedTimestepLabelEmbeddings, get_3d_sincos_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.normalization import AdaLayerNormContinuous, AdaLayerNormZero
from torch import nn

from ..layers import Attention, Mlp
from ..layers.config_checks import check_bool, check_int, check_positive_number
from .presets import dit_paper_name


class DiTBlock3D(nn.Module):
    """Pre-norm transformer block with adaLN-Zero modulation of attention and MLP.

    Shapes:
        hidden_states ``(B, N, D)``, conditioning ``(B, D)`` -> ``(B, N, D)``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, attention_bias: bool) -> None:
        super().__init__()
        self.norm1 = AdaLayerNormZero(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=attention_bias)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), activation="gelu_tanh")

    def forward(self, hidden_states: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        normed, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(hidden_states, emb=conditioning)
        hidden_states = hidden_states + gate_msa[:, None] * self.attn(normed)
        normed = self.norm2(hidden_states) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return hidden_states + gate_mlp[:, None] * self.mlp(normed)


def _check_config(config) -> None:
    """Type- and range-checks every field, naming it."""
    for name in ("num_attention_heads", "attention_head_dim", "in_channels", "sample_frames", "num_embeds_ada_norm"):
        check_int(name, config[name])
    check_int("num_layers", config.num_layers, minimum=0)
    if config.out_channels is not None:
        check_int("out_channels", config.out_channels)
    for name, size, length in (("sample_size", config.sample_size, 2), ("patch_size", config.patch_size, 3)):
        sizes = size if isinstance(size, (tuple, list)) else (size,) * length
        if len(sizes) != length:
            raise ValueError(f"{name}: expected an int or {length} ints, got {size!r}.")
        for value in sizes:
            check_int(name, value)
    check_positive_number("mlp_ratio", config.mlp_ratio)
    check_bool("attention_bias", config.attention_bias)
    dropout = config.class_dropout_prob
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
        raise ValueError(f"class_dropout_prob: expected a probability in [0, 1], got {dropout!r}.")


class DiTTransformer3DModel(ModelMixin, AttentionMixin, ConfigMixin, PeftAdapterMixin):
    r"""Class-conditional DiT for video latents ``(B, C, T, H, W)`` (e.g. ``AutoencoderViTok`` video latents).

    Tokens are non-overlapping ``patch_size = (pt, ph, pw)`` tubelets in raster order (t, h, w); positions use
    diffusers' 3-D sin-cos embedding (3/4 of the width for (h, w), 1/4 for t), computed for the input's grid, so
    the model runs on any grid divisible by the patch size. With ``out_channels = 2 * in_channels`` the second
    half is the learned-range variance, as in ``DiTTransformer2DModel``.

    Args:
        num_attention_heads: attention heads.
        attention_head_dim: width per head; the model width is ``num_attention_heads * attention_head_dim`` and
            must be divisible by 16 (sin-cos embedding).
        in_channels: latent channels ``C``.
        out_channels: output channels; ``None`` means ``2 * in_channels`` (learned sigma).
        num_layers: transformer blocks.
        sample_size: latent height and width (int or ``(H, W)``) used by pipelines to draw noise.
        sample_frames: latent frames ``T`` used by pipelines to draw noise.
        patch_size: tubelet size, an int or ``(pt, ph, pw)``.
        mlp_ratio: MLP hidden width over model width.
        attention_bias: bias of the qkv projection.
        num_embeds_ada_norm: number of classes; class id ``num_embeds_ada_norm`` is the null class.
        class_dropout_prob: label-dropout probability applied inside the model in ``train()`` mode
            (diffusers' ``LabelEmbedding``); set 0 to drop labels yourself.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["DiTBlock3D"]
    _repeated_blocks = ["DiTBlock3D"]
    paper_name = property(lambda self: dit_paper_name(self.config), doc="The DiT paper's name, e.g. `DiT-S/1x2x2`.")
    _skip_layerwise_casting_patterns = ["norm"]

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 16,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: int | None = None,
        num_layers: int = 24,
        sample_size: int | tuple[int, int] = 32,
        sample_frames: int = 4,
        patch_size: int | tuple[int, int, int] = 1,
        mlp_ratio: float = 4.0,
        attention_bias: bool = True,
        num_embeds_ada_norm: int = 1000,
        class_dropout_prob: float = 0.1,
    ) -> None:
        super().__init__()
        _check_config(self.config)
        inner_dim = num_attention_heads * attention_head_dim
        if inner_dim % 16:
            raise ValueError(
                f"num_attention_heads * attention_head_dim: expected a multiple of 16 (3-D sin-cos position "
                f"embedding), got {inner_dim}."
            )
        self.patch_size = (patch_size,) * 3 if isinstance(patch_size, numbers.Integral) else tuple(patch_size)
        self.out_channels = 2 * in_channels if out_channels is None else out_channels
        self.inner_dim = inner_dim
        self.gradient_checkpointing = False

        self.patch_embed = nn.Conv3d(in_channels, inner_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.condition_embed = CombinedTimestepLabelEmbeddings(num_embeds_ada_norm, inner_dim, class_dropout_prob)
        self.transformer_blocks = nn.ModuleList(
            [DiTBlock3D(inner_dim, num_attention_heads, mlp_ratio, attention_bias) for _ in range(num_layers)]
        )
        self.norm_out = AdaLayerNormContinuous(inner_dim, inner_dim, elementwise_affine=False, eps=1e-6)
        tubelet_volume = self.patch_size[0] * self.patch_size[1] * self.patch_size[2]
        self.proj_out = nn.Linear(inner_dim, tubelet_volume * self.out_channels)
        self._zero_init_modulation()

    def _zero_init_modulation(self) -> None:
        """adaLN-Zero: every block starts as the identity and the output starts at zero (DiT, §3.2)."""
        for block in self.transformer_blocks:
            nn.init.zeros_(block.norm1.linear.weight)
            nn.init.zeros_(block.norm1.linear.bias)
        nn.init.zeros_(self.norm_out.linear.weight)
        nn.init.zeros_(self.norm_out.linear.bias)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        class_labels: torch.LongTensor,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        r"""
        Args:
            hidden_states: noisy latents ``(B, in_channels, T, H, W)``; T, H, W divisible by ``patch_size``.
            timestep: diffusion steps ``(B,)`` (or a scalar, broadcast over the batch).
            class_labels: int64 class ids ``(B,)`` in ``[0, num_embeds_ada_norm]`` (the last is the null class).
            return_dict: return a ``Transformer2DModelOutput`` instead of a tuple.

        Returns:
            ``sample`` of shape ``(B, out_channels, T, H, W)``.
        """
        self._check_inputs(hidden_states, class_labels)
        batch_size, _, frames, height, width = hidden_states.shape
        pt, ph, pw = self.patch_size
        grid = (frames // pt, height // ph, width // pw)

        tokens = self.patch_embed(hidden_states).flatten(2).transpose(1, 2)  # (B, N, D), raster (t, h, w)
        tokens = tokens + self._position_embedding(grid, tokens.device, tokens.dtype)
        timestep = torch.as_tensor(timestep, device=tokens.device).reshape(-1).expand(batch_size)
        conditioning = self.condition_embed(timestep, class_labels, hidden_dtype=tokens.dtype)  # (B, D): t + y

        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens = self._gradient_checkpointing_func(block, tokens, conditioning)
            else:
                tokens = block(tokens, conditioning)

        tokens = self.proj_out(self.norm_out(tokens, conditioning))  # (B, N, pt*ph*pw*C_out)
        output = tokens.reshape(batch_size, *grid, pt, ph, pw, self.out_channels)
        output = output.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(batch_size, self.out_channels, frames, height, width)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)

    def _position_embedding(
        self, grid: tuple[int, int, int], device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        """Fixed sin-cos embedding ``(1, T*H*W, D)`` for a token grid ``(T, H, W)`` in raster order."""
        frames, height, width = grid
        embedding = get_3d_sincos_pos_embed(self.inner_dim, (width, height), frames, device=device)
        return embedding.reshape(1, frames * height * width, self.inner_dim).to(dtype)

    def _check_inputs(self, hidden_states: torch.Tensor, class_labels: torch.Tensor) -> None:
        expected_channels = self.config.in_channels
        if hidden_states.ndim != 5 or hidden_states.shape[1] != expected_channels:
            raise ValueError(
                f"hidden_states: expected (B, {expected_channels}, T, H, W), got {tuple(hidden_states.shape)}."
            )
        if any(size % patch for size, patch in zip(hidden_states.shape[2:], self.patch_size)):
            raise ValueError(
                f"hidden_states: expected T, H, W divisible by patch_size {self.patch_size}, "
                f"got {tuple(hidden_states.shape[2:])}."
            )
        if class_labels is None or class_labels.dtype not in (torch.int32, torch.int64):
            got = None if class_labels is None else class_labels.dtype
            raise TypeError(f"class_labels: expected an integer tensor of class ids, got {got}.")
        if class_labels.shape != (hidden_states.shape[0],):
            raise ValueError(
                f"class_labels: expected shape ({hidden_states.shape[0]},), got {tuple(class_labels.shape)}."
            )
        # Reads values on the host: skipped while torch.compile traces (no graph break, no sync).
        null_class = self.config.num_embeds_ada_norm
        if not torch.compiler.is_compiling() and ((class_labels < 0) | (class_labels > null_class)).any():
            bad = class_labels[(class_labels < 0) | (class_labels > null_class)][0].item()
            raise ValueError(
                f"class_labels: expected ids in [0, {null_class}] ({null_class} is the null class), got {bad}."
            )
