"""ViTok: a Vision-Transformer autoencoder for images and videos with the diffusers ``AutoencoderKL`` API.

Paper: "Learnings from Scaling Visual Tokenizers for Reconstruction and Generation" (Hansen-Estruch et al.,
2025). The same class also expresses ViTok-v2 (the published ``philippehansen/ViTok-v2-*`` weights) through its
configuration; see :mod:`hf_compact.vitok.presets` and :func:`hf_compact.vitok.load_vitok_v2`.
"""

from __future__ import annotations

import math
import warnings

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.autoencoders.vae import AutoencoderMixin, DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from ..layers import ROPE_TYPES, rotary_axis_dims
from ..layers.config_checks import check_bool, check_choice, check_int, check_positive_number
from ..layers.mlp import MLP_TYPES
from ..layers.normalization import NORM_TYPES
from ..layers.transformer_block import BLOCK_TYPES
from .presets import VITOK_PRESETS, vitok_paper_name
from .tiling import tiled_apply
from .tubelets import PATCH_EMBED_TYPES
from .vit_coder import LATENT_TYPES, ViTokDecoder, ViTokEncoder

# Pixel inputs are expected in [-1, 1]; values beyond this magnitude trigger a warning.
_PIXEL_RANGE_WARNING_THRESHOLD = 1.5


def _check_config(config) -> None:
    """Type- and range-checks every field, naming it (``encoder_heads`` must divide ``encoder_width`` and leave a
    head dim that ``rope_type`` can rotate)."""
    for name in ("in_channels", "latent_channels", "patch_size", "tubelet_size", "mlp_hidden_multiple", "sample_size"):
        check_int(name, config[name])
    for name in ("mlp_ratio", "norm_eps", "rope_theta", "scaling_factor"):
        check_positive_number(name, config[name])
    if config.layer_scale_init is not None:
        check_positive_number("layer_scale_init", config.layer_scale_init)
    for name in ("mlp_bias", "qkv_bias", "attn_out_bias", "final_norm"):
        check_bool(name, config[name])
    for name, choices in (
        ("mlp_type", MLP_TYPES),
        ("block_type", BLOCK_TYPES),
        ("norm_type", NORM_TYPES),
        ("qk_norm", (None, *NORM_TYPES)),
        ("rope_type", ROPE_TYPES),
        ("patch_embed_type", PATCH_EMBED_TYPES),
        ("latent_type", LATENT_TYPES),
    ):
        check_choice(name, config[name], choices)
    for part in ("encoder", "decoder"):
        width, depth, heads = (f"{part}_width", f"{part}_depth", f"{part}_heads")
        check_int(width, config[width])
        check_int(depth, config[depth], minimum=0)
        check_int(heads, config[heads])
        if config[width] % config[heads]:
            raise ValueError(f"{heads}: expected a divisor of {width}={config[width]}, got {config[heads]}.")
        try:
            rotary_axis_dims(config.rope_type, config[width] // config[heads])
        except ValueError as error:
            raise ValueError(
                f"{width} / {heads}: the head dim {config[width] // config[heads]} does not fit "
                f"rope_type={config.rope_type!r} ({error})."
            ) from None


class AutoencoderViTok(ModelMixin, AttentionMixin, AutoencoderMixin, ConfigMixin, PeftAdapterMixin):
    r"""
    ViTok autoencoder: tubelet embedding -> ViT encoder -> per-token latent -> ViT decoder -> tubelet pixel head.

    Images ``(B, C, H, W)`` and videos ``(B, C, T, H, W)`` in ``[-1, 1]`` (any ``H, W`` divisible by ``patch_size``,
    ``T`` divisible by ``tubelet_size``) map to latent grids ``(B, c, H/p, W/p)`` / ``(B, c, T/q, H/p, W/p)``, a
    reshape of the raster ``(t, h, w)`` token order, so the stock ``DiTPipeline`` with
    ``DiTTransformer2DModel(in_channels=c, sample_size=H/p, patch_size=1)`` can use it as its ``vae``.

    Inputs must be finite and in the model's dtype (inside ``torch.autocast`` the autocast decides). As diffusers' own
    models: ``compile_repeated_blocks`` compiles the ``TransformerBlock`` s, ``set_attention_backend`` picks the
    attention kernel, ``enable_layerwise_casting`` / ``enable_group_offload`` apply, and LoRA adapters come through
    ``add_adapter`` / ``save_lora_adapter`` / ``load_lora_adapter`` (``peft``).

    Parameters:
        in_channels (`int`, defaults to 3): pixel channels (also the output channels).
        latent_channels (`int`, defaults to 16): ``c``, channels per latent token.
        patch_size (`int`, defaults to 16): spatial patch ``p``.
        tubelet_size (`int`, defaults to 1): temporal stride ``q``; ``q > 1`` accepts videos only.
        encoder_width / encoder_depth / encoder_heads, decoder_width / decoder_depth / decoder_heads (`int`):
            independent encoder and decoder sizes (the paper's parameter counts need them independent; the released
            v1 code shares one width).
        mlp_ratio (`float`, defaults to 2.67): MLP hidden size ``int(width * mlp_ratio)``.
        mlp_hidden_multiple (`int`, defaults to 1): round the hidden size to the nearest multiple (ViTok-v2: 16).
        mlp_type (`str`, defaults to `"swiglu"`): ``"swiglu"`` is what the **paper** text says; ``"geglu"`` is what
            the **released v1 code** runs (``fc3(GELU(fc1 x) * fc2 x)``); both use three linears.
            ``"swiglu_fused"`` is ViTok-v2 (one ``[value | gate]`` projection, SiLU).
        mlp_bias (`bool`, defaults to `True`): biases in the MLP linears (v2: none).
        block_type (`str`, defaults to `"sequential"`): ``"sequential"`` pre-norm ViT block (v1) or ``"parallel"``
            attention + MLP on one shared norm with LayerScale on the sum (v2).
        norm_type (`str`, defaults to `"layer"`): ``"layer"`` (LayerNorm with bias, v1) or ``"rms"`` (v2).
        norm_eps (`float`, defaults to 1e-5): epsilon of the block norms (v2: 1e-6).
        layer_scale_init (`float`, *optional*): LayerScale initial value (v2: 1e-4); ``None`` for none.
        qkv_bias (`bool`, defaults to `False`), attn_out_bias (`bool`, defaults to `True`): attention biases
            (v2: none).
        qk_norm (`str`, *optional*): ``None`` (v1) or ``"rms"`` (v2) / ``"layer"``: per-head norm on q and k.
        rope_type (`str`, defaults to `"axial"`): ``"axial"`` is the **paper's** "3D axial RoPE" (per-axis t/h/w
            frequencies, head dim split by :func:`~hf_compact.layers.axial_split`); ``"1d"`` is the **released v1
            code** (RoPE over the flattened raster index); ``"2d"`` is ViTok-v2 (row then column, images only).
        rope_theta (`float`, defaults to 10000.0): RoPE base.
        patch_embed_type (`str`, defaults to `"conv"`): ``"conv"`` (Conv3d / ConvTranspose3d, v1) or ``"linear"``
            (Linear on channel-major flattened patches, v2).
        final_norm (`bool`, defaults to `True`): a final norm after each of the encoder and decoder stacks (v1);
            v2 has none.
        latent_type (`str`, defaults to `"gaussian"`): ``"gaussian"`` (mean/logvar, v1) or ``"deterministic"``
            (``to_latent`` then a non-affine float32 LayerNorm over c, v2). Both are returned as a
            ``DiagonalGaussianDistribution``; the deterministic one has ``deterministic=True`` (zero variance).
        sample_size (`int`, defaults to 256): training resolution; the tile size of :meth:`enable_tiling`.
        scaling_factor (`float`, defaults to 1.0): the paper feeds raw latents to the DiT, hence 1.0. Use
            :func:`hf_compact.vitok.compute_latent_std` to measure the latent std and set ``1 / std``.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock"]
    _repeated_blocks = ["TransformerBlock"]
    paper_name = property(lambda self: vitok_paper_name(self.config), doc="The papers' name, e.g. `ViTok S-B/16`.")
    _skip_layerwise_casting_patterns = ["norm"]

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        # `auto_map` points plain-diffusers users at the modelling file saved beside the weights; not a hyperparameter.
        config_dict = {key: value for key, value in config_dict.items() if key != "auto_map"}
        return super().extract_init_dict(config_dict, **kwargs)

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 16,
        patch_size: int = 16,
        tubelet_size: int = 1,
        encoder_width: int = 768,
        encoder_depth: int = 6,
        encoder_heads: int = 12,
        decoder_width: int = 768,
        decoder_depth: int = 12,
        decoder_heads: int = 12,
        mlp_ratio: float = 2.67,
        mlp_hidden_multiple: int = 1,
        mlp_type: str = "swiglu",
        mlp_bias: bool = True,
        block_type: str = "sequential",
        norm_type: str = "layer",
        norm_eps: float = 1e-5,
        layer_scale_init: float | None = None,
        qkv_bias: bool = False,
        attn_out_bias: bool = True,
        qk_norm: str | None = None,
        rope_type: str = "axial",
        rope_theta: float = 10000.0,
        patch_embed_type: str = "conv",
        final_norm: bool = True,
        latent_type: str = "gaussian",
        sample_size: int = 256,
        scaling_factor: float = 1.0,
    ):
        super().__init__()
        _check_config(self.config)
        self.encoder = ViTokEncoder(self.config)
        self.decoder = ViTokDecoder(self.config)

        self.use_slicing = False
        self.use_tiling = False
        self.tile_sample_min_size = sample_size
        self.tile_overlap_factor = 0.25

        self.apply(self._init_weights)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> AutoencoderViTok:
        """Builds a randomly initialised model from a named configuration in ``VITOK_PRESETS``.

        Args:
            name: ``"S-B/16"``, ``"S-L/16"``, ``"S-B/4x8"``, ``"S-B/8x8"``, ``"S-B/4x16"`` (paper) or
                ``"v2-350M-f16x16"`` ... ``"v2-5B-f32x256"`` (ViTok-v2 architecture; load weights with
                :func:`hf_compact.vitok.load_vitok_v2`).
            overrides: config values replacing the preset's.
        """
        if name not in VITOK_PRESETS:
            raise ValueError(f"name must be one of {sorted(VITOK_PRESETS)}, got {name!r}")
        return cls(**{**VITOK_PRESETS[name], **overrides})

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # As the official ViTok code: xavier-uniform Linear / patch-embedding weights (on the (out, in * kernel) view),
        # zero biases; norms start at weight 1, bias 0 (their default).
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------------------------------------ input checks

    def _grid_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        return (
            frames // self.config.tubelet_size,
            height // self.config.patch_size,
            width // self.config.patch_size,
        )

    def _check_dtype(self, name: str, tensor: torch.Tensor) -> None:
        # Inside torch.autocast the autocast casts decide, as for a plain nn.Conv3d.
        if tensor.dtype != self.dtype and not torch.is_autocast_enabled(tensor.device.type):
            raise TypeError(
                f"{name}: expected a {self.dtype} tensor (the dtype of this AutoencoderViTok), got {tensor.dtype}; "
                f"cast the input with .to({self.dtype}) or the model with .to({tensor.dtype})"
            )

    @staticmethod
    def _largest_magnitude(name: str, tensor: torch.Tensor) -> float:
        """``max |tensor|`` (0 for an empty tensor), read in one host sync; raises if ``tensor`` has NaN or inf."""
        if not tensor.numel():
            return 0.0
        largest = tensor.detach().abs().amax().item()  # NaN if any value is NaN
        if not math.isfinite(largest):
            num_bad = tensor.numel() - torch.isfinite(tensor).sum().item()
            raise ValueError(
                f"{name}: expected finite values, got {num_bad} NaN or infinite of {tensor.numel()} "
                f"(shape {tuple(tensor.shape)})"
            )
        return largest

    def _as_video(self, sample: torch.Tensor) -> torch.Tensor:
        """Validates pixels and returns them as ``(B, C, T, H, W)``."""
        if not isinstance(sample, torch.Tensor):
            raise TypeError(f"sample must be a torch.Tensor, got {type(sample).__name__}")
        if not sample.is_floating_point():
            raise TypeError(f"sample must be a floating-point tensor with values in [-1, 1], got {sample.dtype}")
        self._check_dtype("sample", sample)
        if sample.ndim not in (4, 5):
            raise ValueError(
                f"sample must be (B, C, H, W) images or (B, C, T, H, W) videos, got shape {tuple(sample.shape)}"
            )
        if sample.shape[1] != self.config.in_channels:
            raise ValueError(
                f"sample must have {self.config.in_channels} channels (dim 1), got {sample.shape[1]} "
                f"(shape {tuple(sample.shape)})"
            )
        q, p = self.config.tubelet_size, self.config.patch_size
        if sample.ndim == 4 and q > 1:
            raise ValueError(
                f"sample is a 4-D image batch {tuple(sample.shape)}, but tubelet_size={q} needs videos "
                f"(B, C, T, H, W) with T divisible by {q}"
            )
        height, width = sample.shape[-2:]
        if height % p or width % p:
            raise ValueError(f"sample height and width must be divisible by patch_size={p}, got {height}x{width}")
        video = sample if sample.ndim == 5 else sample.unsqueeze(2)
        if video.shape[2] % q:
            raise ValueError(f"sample frames must be divisible by tubelet_size={q}, got T={video.shape[2]}")
        # The value checks read values on the host: skipped while torch.compile traces (no graph break, no sync).
        if (
            not torch.compiler.is_compiling()
            and self._largest_magnitude("sample", sample) > _PIXEL_RANGE_WARNING_THRESHOLD
        ):
            warnings.warn(
                f"sample values should be in [-1, 1], got range [{sample.min().item():.3g}, {sample.max().item():.3g}]"
                "; rescale pixels with x / 127.5 - 1 (uint8) or 2 * x - 1 ([0, 1])",
                UserWarning,
                stacklevel=3,
            )
        return video

    def _as_latent_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Validates a latent grid and returns it as ``(B, c, t, h, w)``."""
        if not isinstance(latents, torch.Tensor):
            raise TypeError(f"z must be a torch.Tensor, got {type(latents).__name__}")
        if not latents.is_floating_point():
            raise TypeError(f"z must be a floating-point tensor, got {latents.dtype}")
        self._check_dtype("z", latents)
        if latents.ndim not in (4, 5):
            raise ValueError(
                f"z must be a (B, c, h, w) or (B, c, t, h, w) latent grid, got shape {tuple(latents.shape)}"
            )
        if latents.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"z must have latent_channels={self.config.latent_channels} channels (dim 1), got {latents.shape[1]} "
                f"(shape {tuple(latents.shape)})"
            )
        if latents.ndim == 4 and self.config.tubelet_size > 1:
            raise ValueError(
                f"z is a 4-D image latent {tuple(latents.shape)}, but tubelet_size={self.config.tubelet_size} "
                "decodes (B, c, t, h, w) video latents"
            )
        if not torch.compiler.is_compiling():
            self._largest_magnitude("z", latents)
        return latents if latents.ndim == 5 else latents.unsqueeze(2)

    def _require_loaded(self, component: str) -> None:
        if next(getattr(self, component).parameters()).is_meta:
            raise RuntimeError(
                f"the {component} of this AutoencoderViTok has no weights (it was loaded without the {component}); "
                f"reload with components including {component!r}"
            )

    # ------------------------------------------------------------------------------------------------------ encode

    def _encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> latent distribution parameters ``(B, 2c, t, h, w)`` (mean | logvar)."""
        grid_size = self._grid_size(*video.shape[2:])
        latent_tokens = self.encoder(video, grid_size)  # (B, N, 2c) or (B, N, c)
        latent_grid = latent_tokens.transpose(1, 2).reshape(video.shape[0], latent_tokens.shape[-1], *grid_size)
        if self.config.latent_type == "deterministic":
            latent_grid = torch.cat([latent_grid, torch.zeros_like(latent_grid)], dim=1)
        return latent_grid

    def _tile_strides(self) -> tuple[int, int, int, int]:
        """(pixel tile, pixel stride, latent tile, latent stride), all aligned to the patch grid."""
        p = self.config.patch_size
        tile = max(p, self.tile_sample_min_size // p * p)
        stride = max(p, int(tile * (1 - self.tile_overlap_factor)) // p * p)
        return tile, stride, tile // p, stride // p

    def _encode_moments(self, video: torch.Tensor) -> torch.Tensor:
        tile, stride, latent_tile, latent_stride = self._tile_strides()
        if self.use_tiling and max(video.shape[-2:]) > tile:
            blend_extent = latent_tile - latent_stride
            return tiled_apply(video, self._encode_video, tile, stride, latent_stride, blend_extent)
        return self._encode_video(video)

    @apply_forward_hook
    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        """Encodes pixels into a latent distribution.

        Args:
            x: ``(B, C, H, W)`` images or ``(B, C, T, H, W)`` videos in ``[-1, 1]``.
            return_dict: return an ``AutoencoderKLOutput`` instead of a tuple.

        Returns:
            ``AutoencoderKLOutput(latent_dist)`` with a ``DiagonalGaussianDistribution`` over ``(B, c, H/p, W/p)``
            (images) or ``(B, c, T/q, H/p, W/p)`` (videos); ``deterministic=True`` for ``latent_type="deterministic"``.
        """
        self._require_loaded("encoder")
        video = self._as_video(x)
        if self.use_slicing and video.shape[0] > 1:
            moments = torch.cat([self._encode_moments(clip) for clip in video.split(1)])
        else:
            moments = self._encode_moments(video)
        if x.ndim == 4:
            moments = moments.squeeze(2)
        posterior = DiagonalGaussianDistribution(moments, deterministic=self.config.latent_type == "deterministic")
        if not return_dict:
            return (posterior,)
        return AutoencoderKLOutput(latent_dist=posterior)

    # ------------------------------------------------------------------------------------------------------ decode

    def _decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """``(B, c, t, h, w)`` -> ``(B, C, t*q, h*p, w*p)``."""
        grid_size = tuple(latents.shape[2:])
        return self.decoder(latents.flatten(2).transpose(1, 2), grid_size)

    def _decode_pixels(self, latents: torch.Tensor) -> torch.Tensor:
        tile, stride, latent_tile, latent_stride = self._tile_strides()
        if self.use_tiling and max(latents.shape[-2:]) > latent_tile:
            return tiled_apply(latents, self._decode_video, latent_tile, latent_stride, stride, tile - stride)
        return self._decode_video(latents)

    @apply_forward_hook
    def decode(
        self, z: torch.Tensor, return_dict: bool = True, generator: torch.Generator | None = None
    ) -> DecoderOutput | tuple:
        """Decodes latent grids into pixels (not clamped).

        Args:
            z: ``(B, c, h, w)`` image latents or ``(B, c, t, h, w)`` video latents.
            return_dict: return a ``DecoderOutput`` instead of a tuple.
            generator: unused; accepted for ``AutoencoderKL`` API compatibility.

        Returns:
            ``DecoderOutput(sample)`` with ``(B, C, h*p, w*p)`` or ``(B, C, t*q, h*p, w*p)`` pixels.
        """
        self._require_loaded("decoder")
        latents = self._as_latent_video(z)
        if self.use_slicing and latents.shape[0] > 1:
            decoded = torch.cat([self._decode_pixels(clip) for clip in latents.split(1)])
        else:
            decoded = self._decode_pixels(latents)
        if z.ndim == 4:
            decoded = decoded.squeeze(2)
        if not return_dict:
            return (decoded,)
        return DecoderOutput(sample=decoded)

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple:
        """Reconstructs ``sample`` (``(B, C, H, W)`` or ``(B, C, T, H, W)`` in ``[-1, 1]``).

        Args:
            sample_posterior: decode a posterior sample instead of its mean.
            generator: random generator for the posterior sample.
        """
        posterior = self.encode(sample).latent_dist
        latents = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        decoded = self.decode(latents).sample
        if not return_dict:
            return (decoded,)
        return DecoderOutput(sample=decoded)
