"""PyTorch CCT vision family: ViT-Lite, CVT and CCT ("Escaping the Big Data Paradigm with Compact Transformers").

Numerics follow the official code (SHI-Labs/Compact-Transformers): the unusual encoder layer that normalises the
residual stream between attention and MLP, sequence pooling, the official initialisation. One documented bug is fixed:
the official CCT/CVT `*_sine` builders silently build learnable position embeddings; here `"sine"` is the sine table.

The building blocks (`CCTEncoder`, `CCTLayer`, `CCTSelfAttention`, `CCTSequencePooling`,
`sinusoidal_position_table`) accept a token padding mask so that the text variants reuse them.

This file may import only `torch`, `transformers` and sibling files: `register_for_auto_class` copies it next to
the weights for `trust_remote_code` users.
"""

import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.configuration_utils import PreTrainedConfig
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.models.vit.modeling_vit import eager_attention_forward
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_cct import CCTConfig


def sinusoidal_position_table(num_positions: int, dim: int) -> torch.Tensor:
    """The official CCT sine position table, shape `(num_positions, dim)`, float32.

    Entry `(p, i)` is `sin(p / 10000 ** (2 * (i // 2) / dim))` for even channels `i` and `cos(...)` for odd ones
    (interleaved sine/cosine, not concatenated halves).
    """
    positions = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    channel_pairs = torch.div(torch.arange(dim), 2, rounding_mode="floor").to(torch.float64)
    angles = positions / torch.pow(10000.0, 2.0 * channel_pairs / dim)
    table = torch.where(torch.arange(dim) % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.to(torch.float32)


class CCTDropPath(nn.Module):
    """Stochastic depth: zeroes the whole residual branch of a sample with probability `drop_prob` during training
    and rescales the kept ones by `1 / (1 - drop_prob)`. Identity in eval mode.

    `hidden_states` (the residual branch) `(batch, ...)` -> same shape; the input is never modified."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        mask_shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        # One factor per sample, 0 or 1 / keep_prob.
        scale = hidden_states.new_empty(mask_shape).bernoulli_(keep_prob).div_(keep_prob)
        return hidden_states * scale

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output length of a convolution / pooling window (no dilation) over `size` elements (int or tensor)."""
    return (size + 2 * padding - kernel_size) // stride + 1


class CCTConvEmbeddings(nn.Module):
    """The paper's "convolutional tokenizer": turns `pixel_values` `(batch, channels, height, width)` into tokens
    `(batch, grid_h * grid_w, hidden_size)`. (Not a text tokenizer; `CCTModel.get_input_embeddings()` returns it.)

    `"conv"` (CCT): `num_conv_layers` x [Conv2d without bias -> ReLU -> MaxPool2d]; `"patch"` (ViT-Lite, CVT): one
    Conv2d with kernel = stride = `patch_size` and a bias (a plain patch embedding).
    """

    def __init__(self, config: CCTConfig):
        super().__init__()
        self.num_channels = config.num_channels
        self.is_patch_tokenizer = config.tokenizer_type == "patch"
        if self.is_patch_tokenizer:
            self.patch_size = config.patch_size
            self.convolutions = nn.ModuleList(
                [nn.Conv2d(config.num_channels, config.hidden_size, config.patch_size, stride=config.patch_size)]
            )
            self.activation = nn.Identity()
            self.pooling = nn.Identity()
            return
        channels = [config.num_channels] + [config.conv_intermediate_channels] * (config.num_conv_layers - 1)
        channels.append(config.hidden_size)
        self.convolutions = nn.ModuleList(
            nn.Conv2d(
                in_channels,
                out_channels,
                config.conv_kernel_size,
                stride=config.conv_stride,
                padding=config.conv_padding,
                bias=False,
            )
            for in_channels, out_channels in zip(channels[:-1], channels[1:])
        )
        self.activation = nn.ReLU()
        self.pooling = nn.MaxPool2d(config.pooling_kernel_size, config.pooling_stride, config.pooling_padding)

    def output_grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Token grid `(grid_h, grid_w)` for an input of `height` x `width` pixels; raises `ValueError` if the
        tokenizer cannot handle that size."""
        if self.is_patch_tokenizer:
            if height % self.patch_size or width % self.patch_size:
                raise ValueError(
                    f"`pixel_values` height and width must be divisible by the patch size {self.patch_size}, "
                    f"got {height}x{width}."
                )
            return height // self.patch_size, width // self.patch_size
        grid = [height, width]
        pooling = self.pooling
        for convolution in self.convolutions:
            for axis in range(2):
                size = conv_output_size(
                    grid[axis],
                    convolution.kernel_size[axis],
                    convolution.stride[axis],
                    convolution.padding[axis],
                )
                grid[axis] = conv_output_size(size, pooling.kernel_size, pooling.stride, pooling.padding)
            if min(grid) < 1:
                raise ValueError(
                    f"`pixel_values` of {height}x{width} pixels are too small for the {len(self.convolutions)}-layer "
                    f"convolutional tokenizer (kernel {convolution.kernel_size}, stride {convolution.stride}, "
                    "followed by max-pooling): they leave no token."
                )
        return grid[0], grid[1]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # Channels-last: oneDNN's convolution and the max-pooling vectorise over channels, and the last feature map
        # (batch, height, width, channels) is already the token layout. ReLU is monotone, so it commutes with
        # max-pooling: applying it after the pooling is exact (same values and gradients) on 4x fewer elements.
        features = pixel_values.contiguous(memory_format=torch.channels_last)
        for convolution in self.convolutions:
            features = self.activation(self.pooling(convolution(features)))
        return features.permute(0, 2, 3, 1).flatten(1, 2)


class CCTPositionalEmbeddings(nn.Module):
    """Base of the vision and text embeddings: the optional class token (`pooling_type="cls"`) and the position
    embeddings (`position_embedding_type`: a learnable `(1, num_positions, hidden_size)` parameter, the fixed sine
    table as a non-persistent buffer, or none), built and initialised the same way for both."""

    def __init__(self, config: CCTConfig, num_tokens: int):
        """`num_tokens`: tokens (class token excluded) of the longest / configured input."""
        super().__init__()
        self.config = config
        self.num_prefix_tokens = 1 if config.pooling_type == "cls" else 0
        self.class_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if self.num_prefix_tokens else None
        num_positions = num_tokens + self.num_prefix_tokens
        if config.position_embedding_type == "learnable":
            self.position_embeddings = nn.Parameter(torch.zeros(1, num_positions, config.hidden_size))
        elif config.position_embedding_type == "sine":
            # In the default dtype, so that `from_pretrained(..., dtype=torch.bfloat16)` builds it in bfloat16.
            table = sinusoidal_position_table(num_positions, config.hidden_size).to(torch.get_default_dtype())
            self.register_buffer("position_embeddings", table.unsqueeze(0), persistent=False)
        else:
            self.position_embeddings = None
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def prepend_class_token(self, tokens: torch.Tensor) -> torch.Tensor:
        """`(batch, num_tokens, hidden_size)` -> `(batch, num_prefix_tokens + num_tokens, hidden_size)`."""
        if self.class_token is None:
            return tokens
        return torch.cat([self.class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)

    def init_class_token_and_positions(self) -> None:
        """The official initialisation: zero class token, truncated-normal learnable position embeddings (std
        `position_embedding_init_std`), the sine table recomputed."""
        if self.class_token is not None:
            init.zeros_(self.class_token)
        if self.config.position_embedding_type == "learnable":
            init.trunc_normal_(self.position_embeddings, std=self.config.position_embedding_init_std)
        elif self.config.position_embedding_type == "sine":
            table = sinusoidal_position_table(self.position_embeddings.shape[1], self.config.hidden_size)
            init.copy_(self.position_embeddings, table.unsqueeze(0))


class CCTEmbeddings(CCTPositionalEmbeddings):
    """Convolutional (or patch) embeddings, optional class token, position embeddings and dropout: `pixel_values`
    `(batch, channels, height, width)` -> `(batch, num_tokens, hidden_size)`, where `num_tokens` counts the class
    token if there is one."""

    def __init__(self, config: CCTConfig):
        tokenizer = CCTConvEmbeddings(config)
        grid_size = tokenizer.output_grid_size(config.image_size, config.image_size)
        super().__init__(config, grid_size[0] * grid_size[1])
        self.tokenizer = tokenizer  # the attribute name keeps the official-weight state-dict keys
        self.grid_size = grid_size

    def interpolate_pos_encoding(self, grid_size: tuple[int, int]) -> torch.Tensor:
        """Position embeddings `(1, num_tokens, hidden_size)` for a `grid_size` token grid: the learnable grid is
        resized bilinearly (the class-token row is kept); the sine table is recomputed for the new token count."""
        if tuple(grid_size) == tuple(self.grid_size):
            return self.position_embeddings
        if self.config.position_embedding_type == "sine":
            num_positions = grid_size[0] * grid_size[1] + self.num_prefix_tokens
            table = sinusoidal_position_table(num_positions, self.config.hidden_size)
            return table.to(self.position_embeddings).unsqueeze(0)
        prefix = self.position_embeddings[:, : self.num_prefix_tokens]
        grid = self.position_embeddings[:, self.num_prefix_tokens :]
        grid = grid.reshape(1, *self.grid_size, -1).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid, size=grid_size, mode="bilinear", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).flatten(1, 2)
        return torch.cat([prefix, grid], dim=1)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        grid_size = self.tokenizer.output_grid_size(height, width)
        embeddings = self.prepend_class_token(self.tokenizer(pixel_values))
        if self.position_embeddings is not None:
            if interpolate_pos_encoding:
                embeddings = embeddings + self.interpolate_pos_encoding(grid_size)
            elif grid_size != self.grid_size:
                raise ValueError(
                    f"`pixel_values` of {height}x{width} pixels give a {grid_size[0]}x{grid_size[1]} token grid, but "
                    f"the position embeddings were built for {self.config.image_size}x{self.config.image_size} "
                    f"pixels ({self.grid_size[0]}x{self.grid_size[1]} tokens). Pass `interpolate_pos_encoding=True` "
                    "to resize them."
                )
            else:
                embeddings = embeddings + self.position_embeddings
        return self.dropout(embeddings)


class CCTSelfAttention(nn.Module):
    """Multi-head self-attention with a fused bias-free `qkv` projection, through transformers' attention-function
    registry: `config._attn_implementation` (set with `attn_implementation=...` at load time or
    `model.set_attn_implementation(...)`) is `"sdpa"` by default, `"eager"` to return attention probabilities, or any
    implementation registered with `transformers.AttentionInterface`.

    `hidden_states` `(batch, num_tokens, hidden_size)` -> `(output (batch, num_tokens, hidden_size), attention
    probabilities (batch, heads, num_tokens, num_tokens) or None)`.
    `attention_mask`: token padding mask `(batch, num_tokens)` (True/1 = real token; masked keys get no attention)
    or the 4-D mask prepared from it by `create_bidirectional_mask`.
    """

    def __init__(self, config: CCTConfig):
        super().__init__()
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, num_tokens, _ = hidden_states.shape
        if attention_mask is not None and attention_mask.ndim == 2:
            attention_mask = create_bidirectional_mask(self.config, hidden_states, attention_mask)
        qkv = self.qkv(hidden_states)
        qkv = qkv.view(batch_size, num_tokens, 3, self.num_attention_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        if batch_size == 0:  # transformers' SDPA wrapper cannot reshape an empty batch; eager returns empty outputs
            attention_interface = eager_attention_forward
        attention_output, attention_probs = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attention_output = attention_output.reshape(batch_size, num_tokens, self.num_attention_heads * self.head_dim)
        return self.dropout(self.out_proj(attention_output)), attention_probs


class CCTMLP(nn.Module):
    """Linear -> activation -> dropout -> Linear -> dropout, on `(batch, num_tokens, hidden_size)`."""

    def __init__(self, config: CCTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.fc1(hidden_states)
        hidden_states = self.activation(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.fc2(hidden_states)
        return self.dropout(hidden_states)


class CCTLayer(GradientCheckpointingLayer):
    """The official CCT encoder layer (not a plain pre-norm block: the residual stream itself is normalised between
    the two sub-blocks, and the MLP has no norm of its own):

        x = x + drop_path(attention(layernorm_before(x)))
        x = layernorm_after(x)
        x = x + drop_path(mlp(x))

    `hidden_states` `(batch, num_tokens, hidden_size)` -> same shape. `attention_mask` as in `CCTSelfAttention`.
    """

    def __init__(self, config: CCTConfig, drop_path_rate: float = 0.0):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = CCTSelfAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CCTMLP(config)
        self.drop_path = CCTDropPath(drop_path_rate)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        # Self-attention
        residual = hidden_states
        hidden_states = self.layernorm_before(hidden_states)
        hidden_states, _ = self.attention(hidden_states, attention_mask, **kwargs)
        hidden_states = self.drop_path(hidden_states)
        hidden_states = hidden_states + residual

        # The residual stream itself is normalised, then the MLP (no norm of its own)
        hidden_states = self.layernorm_after(hidden_states)
        residual = hidden_states
        hidden_states = self.mlp(hidden_states)
        hidden_states = self.drop_path(hidden_states)
        return hidden_states + residual


class CCTEncoder(nn.Module):
    """`num_hidden_layers` `CCTLayer`s with linearly increasing stochastic depth (`0` for the first layer,
    `drop_path_rate` for the last).

    `hidden_states` `(batch, num_tokens, hidden_size)` -> same shape (before the final LayerNorm).
    `attention_mask`: optional token padding mask `(batch, num_tokens)`, True/1 = real token; padded tokens are
    never attended to. Reads `hidden_size`, `num_attention_heads`, `intermediate_size`, `hidden_act`,
    `hidden_dropout_prob`, `attention_probs_dropout_prob`, `drop_path_rate`, `layer_norm_eps` and
    `num_hidden_layers` from `config`.
    """

    def __init__(self, config: CCTConfig):
        super().__init__()
        self.config = config
        last_index = max(config.num_hidden_layers - 1, 1)
        self.layers = nn.ModuleList(
            CCTLayer(config, drop_path_rate=config.drop_path_rate * index / last_index)
            for index in range(config.num_hidden_layers)
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attention_mask = create_bidirectional_mask(self.config, hidden_states, attention_mask)
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask, **kwargs)
        return hidden_states


class CCTSequencePooling(nn.Module):
    """SeqPool: an attention-weighted average of the tokens with one learned query (a `Linear(hidden_size, 1)`
    scoring every token, softmax over tokens).

    `hidden_states` `(batch, num_tokens, hidden_size)` -> `(batch, hidden_size)`. `attention_mask` `(batch,
    num_tokens)`, True/1 = real token: padded tokens get zero weight.
    """

    def __init__(self, config: CCTConfig):
        super().__init__()
        self.attention_pool = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.attention_pool(hidden_states).squeeze(-1)
        if attention_mask is not None:
            scores = scores.masked_fill(~attention_mask.bool(), torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        return torch.einsum("bn,bnd->bd", weights, hidden_states)


# What `check_tensor_argument` accepts for each `dtype`: "int" is what embeddings and the cross-entropy take.
TENSOR_KINDS = {
    "float": ("a floating-point torch.Tensor", lambda tensor: tensor.is_floating_point()),
    "int": ("an int64 torch.Tensor", lambda tensor: tensor.dtype in (torch.int64, torch.int32)),
    None: ("a torch.Tensor", lambda tensor: True),
}


def check_tensor_argument(name: str, value, shape: tuple[int | str, ...], dtype: str | None) -> None:
    """Raises a `TypeError` (not a tensor, wrong dtype) or a `ValueError` (wrong shape) naming the argument `name`.

    `shape`: the expected sizes, an int where the size is fixed and a name (e.g. `"batch_size"`) where any size goes.
    `dtype`: `"float"` (any floating-point dtype), `"int"` (int64 or int32) or `None` (any).
    """
    kind, dtype_fits = TENSOR_KINDS[dtype]
    expected = f"{kind} of shape ({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be {expected}, got {type(value).__name__}.")
    if not dtype_fits(value):
        raise TypeError(f"`{name}` must be {expected}, got dtype {value.dtype}.")
    if value.ndim != len(shape) or any(size != got for size, got in zip(shape, value.shape) if isinstance(size, int)):
        raise ValueError(f"`{name}` must be {expected}, got shape {tuple(value.shape)}.")


def check_classification_labels(labels, logits: torch.Tensor, config: PreTrainedConfig) -> None:
    """Checks `labels` against `logits` `(batch, num_labels)` and the loss transformers picks for them: float
    targets `(batch, num_labels)` for regression (`problem_type="regression"` or one label) and multi-label
    classification (`problem_type="multi_label_classification"`, or 2-D float labels without a problem type), else
    class indices `(batch,)` in `[0, num_labels)` or -100.

    The range check of class indices reads values on the host, so it is skipped while `torch.compile` traces.
    """
    batch_size, num_labels = logits.shape
    problem_type = config.problem_type or ("regression" if num_labels == 1 else None)
    multi_hot = isinstance(labels, torch.Tensor) and labels.is_floating_point() and labels.ndim == 2
    if problem_type in ("regression", "multi_label_classification") or (problem_type is None and multi_hot):
        one_target = problem_type == "regression" and num_labels == 1 and getattr(labels, "ndim", None) == 1
        check_tensor_argument("labels", labels, (batch_size,) if one_target else (batch_size, num_labels), "float")
        return
    check_tensor_argument("labels", labels, (batch_size,), "int")
    if not torch.compiler.is_compiling():
        invalid = (labels >= num_labels) | ((labels < 0) & (labels != -100))
        if invalid.any():
            raise ValueError(
                f"`labels` must be class indices in [0, {num_labels}) (config.num_labels) or -100, got "
                f"{labels[invalid].unique().tolist()}."
            )


class CCTPreTrainedModel(PreTrainedModel):
    """Base class of the CCT models: configuration class, official weight initialisation, attention and
    gradient-checkpointing capabilities, and which modules `output_hidden_states` / `output_attentions` record."""

    config_class = CCTConfig
    config: CCTConfig
    base_model_prefix = "cct"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["CCTEmbeddings", "CCTLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _can_record_outputs = {"hidden_states": CCTLayer, "attentions": CCTSelfAttention}

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """The official initialisation: truncated-normal Linear weights (std `initializer_range`) with zero biases,
        Kaiming-normal convolutions (PyTorch's default uniform bias), LayerNorm 1/0, zero class token, truncated-normal
        learnable position embeddings with std `position_embedding_init_std`."""
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init.kaiming_normal_(module.weight)
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, CCTPositionalEmbeddings):
            module.init_class_token_and_positions()


class CCTModel(CCTPreTrainedModel):
    """The bare CCT / CVT / ViT-Lite encoder: tokenizer + position embeddings + encoder + final LayerNorm, and the
    pooled representation (SeqPool or the class token).

    Output: `BaseModelOutputWithPooling` with `last_hidden_state` `(batch, num_tokens, hidden_size)` (after the final
    LayerNorm; `num_tokens` includes the class token for ViT-Lite) and `pooler_output` `(batch, hidden_size)`.
    """

    def __init__(self, config: CCTConfig):
        super().__init__(config)
        self.embeddings = CCTEmbeddings(config)
        self.encoder = CCTEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = CCTSequencePooling(config) if config.pooling_type == "seq_pool" else None
        self.post_init()

    def get_input_embeddings(self) -> CCTConvEmbeddings:
        """The convolutional (or patch) embeddings, as ViT returns its patch embeddings: the module whose output
        `enable_input_require_grads()` makes require gradients."""
        return self.embeddings.tokenizer

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Normalised images, e.g. from [`CCTImageProcessor`].
        interpolate_pos_encoding (`bool`, *optional*):
            Resize the position embeddings when the input resolution differs from `config.image_size`.
        """
        check_tensor_argument(
            "pixel_values", pixel_values, ("batch_size", self.config.num_channels, "height", "width"), "float"
        )
        pixel_values = pixel_values.to(self.embeddings.tokenizer.convolutions[0].weight.dtype)
        embeddings = self.embeddings(pixel_values, interpolate_pos_encoding=bool(interpolate_pos_encoding))
        hidden_states = self.layernorm(self.encoder(embeddings, **kwargs))
        pooled_output = self.pooler(hidden_states) if self.pooler is not None else hidden_states[:, 0]
        return BaseModelOutputWithPooling(last_hidden_state=hidden_states, pooler_output=pooled_output)


class CCTForImageClassification(CCTPreTrainedModel):
    """CCT / CVT / ViT-Lite with a linear classifier on the pooled output.

    Output: `ImageClassifierOutput` with `logits` `(batch, num_labels)` and, when `labels` `(batch,)` are given, the
    loss of `config.problem_type` (cross-entropy for integer labels).
    """

    def __init__(self, config: CCTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.cct = CCTModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ImageClassifierOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Normalised images, e.g. from [`CCTImageProcessor`].
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, config.num_labels)` (or `-100` to ignore a sample); float targets for regression
            (`num_labels == 1`) or multi-label classification.
        interpolate_pos_encoding (`bool`, *optional*):
            Resize the position embeddings when the input resolution differs from `config.image_size`.
        """
        outputs: BaseModelOutputWithPooling = self.cct(
            pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs
        )
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            check_classification_labels(labels, logits, self.config)
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "CCTConvEmbeddings",
    "CCTEmbeddings",
    "CCTEncoder",
    "CCTForImageClassification",
    "CCTLayer",
    "CCTModel",
    "CCTPositionalEmbeddings",
    "CCTPreTrainedModel",
    "CCTSelfAttention",
    "CCTSequencePooling",
    "check_classification_labels",
    "check_tensor_argument",
    "conv_output_size",
    "sinusoidal_position_table",
]
