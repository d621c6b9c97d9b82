"""Configuration of the CCT vision family: ViT-Lite, CVT and CCT (Hassani et al., 2021).

This file may import only `torch`, `transformers` and sibling files: `register_for_auto_class` copies it next to
the weights for `trust_remote_code` users.
"""

import typing
from typing import Any, ClassVar

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

# Encoder sizes shared by the three families (official `vit_N` / `cvt_N` / `cct_N` helpers).
_SIZE_2 = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 128, "intermediate_size": 128}
_SIZE_4 = {"num_hidden_layers": 4, "num_attention_heads": 2, "hidden_size": 128, "intermediate_size": 128}
_SIZE_6 = {"num_hidden_layers": 6, "num_attention_heads": 4, "hidden_size": 256, "intermediate_size": 512}
_SIZE_7 = {"num_hidden_layers": 7, "num_attention_heads": 4, "hidden_size": 256, "intermediate_size": 512}
_SIZE_14 = {"num_hidden_layers": 14, "num_attention_heads": 6, "hidden_size": 384, "intermediate_size": 1152}

# Tokenizer + pooling of each family (the `_4`, `_3x1`, `_3x2`, `_7x2` parts of the official names).
_VIT_PATCH_4 = {"tokenizer_type": "patch", "patch_size": 4, "pooling_type": "cls"}
_CVT_PATCH_4 = {"tokenizer_type": "patch", "patch_size": 4, "pooling_type": "seq_pool"}
_CCT_CONV_3X1 = {
    "tokenizer_type": "conv",
    "num_conv_layers": 1,
    "conv_kernel_size": 3,
    "pooling_type": "seq_pool",
}
_CCT_CONV_3X2 = {
    "tokenizer_type": "conv",
    "num_conv_layers": 2,
    "conv_kernel_size": 3,
    "pooling_type": "seq_pool",
}
_CCT_CONV_7X2 = {
    "tokenizer_type": "conv",
    "num_conv_layers": 2,
    "conv_kernel_size": 7,
    "pooling_type": "seq_pool",
}

_CIFAR10 = {"image_size": 32, "num_labels": 10}
_CIFAR100 = {"image_size": 32, "num_labels": 100}
_SINE = {"position_embedding_type": "sine"}

CCT_PRESETS: dict[str, dict[str, Any]] = {
    # ViT-Lite (patch tokenizer + class token)
    "vit_2_4_32": {**_SIZE_2, **_VIT_PATCH_4, **_CIFAR10},
    "vit_2_4_32_sine": {**_SIZE_2, **_VIT_PATCH_4, **_CIFAR10, **_SINE},
    "vit_4_4_32": {**_SIZE_4, **_VIT_PATCH_4, **_CIFAR10},
    "vit_4_4_32_sine": {**_SIZE_4, **_VIT_PATCH_4, **_CIFAR10, **_SINE},
    "vit_6_4_32": {**_SIZE_6, **_VIT_PATCH_4, **_CIFAR10},
    "vit_6_4_32_sine": {**_SIZE_6, **_VIT_PATCH_4, **_CIFAR10, **_SINE},
    "vit_7_4_32": {**_SIZE_7, **_VIT_PATCH_4, **_CIFAR10},
    "vit_7_4_32_sine": {**_SIZE_7, **_VIT_PATCH_4, **_CIFAR10, **_SINE},
    # CVT (patch tokenizer + sequence pooling)
    "cvt_2_4_32": {**_SIZE_2, **_CVT_PATCH_4, **_CIFAR10},
    "cvt_2_4_32_sine": {**_SIZE_2, **_CVT_PATCH_4, **_CIFAR10, **_SINE},
    "cvt_4_4_32": {**_SIZE_4, **_CVT_PATCH_4, **_CIFAR10},
    "cvt_4_4_32_sine": {**_SIZE_4, **_CVT_PATCH_4, **_CIFAR10, **_SINE},
    "cvt_6_4_32": {**_SIZE_6, **_CVT_PATCH_4, **_CIFAR10},
    "cvt_6_4_32_sine": {**_SIZE_6, **_CVT_PATCH_4, **_CIFAR10, **_SINE},
    "cvt_7_4_32": {**_SIZE_7, **_CVT_PATCH_4, **_CIFAR10},
    "cvt_7_4_32_sine": {**_SIZE_7, **_CVT_PATCH_4, **_CIFAR10, **_SINE},
    # CCT (convolutional tokenizer + sequence pooling)
    "cct_2_3x2_32": {**_SIZE_2, **_CCT_CONV_3X2, **_CIFAR10},
    "cct_2_3x2_32_sine": {**_SIZE_2, **_CCT_CONV_3X2, **_CIFAR10, **_SINE},
    "cct_4_3x2_32": {**_SIZE_4, **_CCT_CONV_3X2, **_CIFAR10},
    "cct_4_3x2_32_sine": {**_SIZE_4, **_CCT_CONV_3X2, **_CIFAR10, **_SINE},
    "cct_6_3x1_32": {**_SIZE_6, **_CCT_CONV_3X1, **_CIFAR10},
    "cct_6_3x1_32_sine": {**_SIZE_6, **_CCT_CONV_3X1, **_CIFAR10, **_SINE},
    "cct_6_3x2_32": {**_SIZE_6, **_CCT_CONV_3X2, **_CIFAR10},
    "cct_6_3x2_32_sine": {**_SIZE_6, **_CCT_CONV_3X2, **_CIFAR10, **_SINE},
    "cct_7_3x1_32": {**_SIZE_7, **_CCT_CONV_3X1, **_CIFAR10},
    "cct_7_3x1_32_sine": {**_SIZE_7, **_CCT_CONV_3X1, **_CIFAR10, **_SINE},
    "cct_7_3x1_32_c100": {**_SIZE_7, **_CCT_CONV_3X1, **_CIFAR100},
    "cct_7_3x1_32_sine_c100": {**_SIZE_7, **_CCT_CONV_3X1, **_CIFAR100, **_SINE},
    "cct_7_3x2_32": {**_SIZE_7, **_CCT_CONV_3X2, **_CIFAR10},
    "cct_7_3x2_32_sine": {**_SIZE_7, **_CCT_CONV_3X2, **_CIFAR10, **_SINE},
    "cct_7_7x2_224": {**_SIZE_7, **_CCT_CONV_7X2, "image_size": 224, "num_labels": 102},
    "cct_7_7x2_224_sine": {**_SIZE_7, **_CCT_CONV_7X2, "image_size": 224, "num_labels": 102, **_SINE},
    "cct_14_7x2_224": {**_SIZE_14, **_CCT_CONV_7X2, "image_size": 224, "num_labels": 1000},
    "cct_14_7x2_384": {**_SIZE_14, **_CCT_CONV_7X2, "image_size": 384, "num_labels": 1000},
    "cct_14_7x2_384_fl": {**_SIZE_14, **_CCT_CONV_7X2, "image_size": 384, "num_labels": 102},
}
"""Every official vision variant (SHI-Labs/Compact-Transformers) by its official name, as `CCTConfig` arguments.

Parameter counts equal the official ones (learnable PE: all parameters; `*_sine`: trainable parameters, because the
sine table is a fixed buffer). Unlike the official code at HEAD, the CCT/CVT `*_sine` presets really use the sine
table (the official builders drop the `positional_embedding` argument and silently build a learnable one).
"""

_TOKENIZER_TYPES = ("conv", "patch")
_POSITION_EMBEDDING_TYPES = ("learnable", "sine", "none")
_POOLING_TYPES = ("seq_pool", "cls")

_TYPE_NAMES = {int: "an int", float: "a number", str: "a string", bool: "a bool", type(None): "None"}
# Ranges of the fields of either configuration (a field that a configuration does not have is skipped).
_AT_LEAST_ONE = (
    "image_size", "num_channels", "patch_size", "num_conv_layers", "conv_kernel_size", "conv_stride",
    "conv_intermediate_channels", "pooling_kernel_size", "pooling_stride", "hidden_size", "num_hidden_layers",
    "num_attention_heads", "intermediate_size", "vocab_size", "word_embedding_dim", "max_position_embeddings",
)  # fmt: skip
_NON_NEGATIVE = (
    "conv_padding", "pooling_padding", "initializer_range", "position_embedding_init_std", "word_embedding_init_std"
)  # fmt: skip
_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate")


class CompactTransformerConfigMixin:
    """What the vision and text configurations share: the official defaults of the convolutional tokenizer, the
    checks of the family choices and of the head count, and building a configuration from an official preset.

    Subclasses set `presets` (name -> arguments), `family` (for messages) and `choices` (argument -> allowed values).
    """

    presets: ClassVar[dict[str, dict[str, Any]]]
    family: ClassVar[str]
    choices: ClassVar[dict[str, tuple[str, ...]]]

    def _check_field_types(self) -> None:
        """Raises a `TypeError` naming the first field of this class whose value does not have its annotated type
        (an int is a valid float, a bool is not a valid int)."""
        for name, annotation in type(self).__annotations__.items():  # this class's fields, not the base's
            value, allowed = getattr(self, name), typing.get_args(annotation) or (annotation,)
            if float in allowed:
                allowed = (*allowed, int)
            if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
                expected = " or ".join(
                    _TYPE_NAMES[kind] for kind in allowed if kind is not int or float not in allowed
                )
                raise TypeError(f"`{name}` must be {expected}, got {type(value).__name__} {value!r}.")

    def _check_field_ranges(self) -> None:
        """Raises a `ValueError` naming the first field outside its range."""
        for names, low, high, expected in (
            (_AT_LEAST_ONE, 1, None, "at least 1"),
            (_NON_NEGATIVE, 0, None, "non-negative"),
            (_PROBABILITIES, 0, 1, "in [0, 1)"),
        ):
            for name in names:
                value = getattr(self, name, None)
                if value is not None and (value < low or (high is not None and value >= high)):
                    raise ValueError(f"`{name}` must be {expected}, got {value!r}.")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"`layer_norm_eps` must be positive, got {self.layer_norm_eps!r}.")
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"`hidden_act` must be one of {sorted(ACT2FN)}, got {self.hidden_act!r}.")

    def _check_labels(self) -> None:
        """`num_labels` (from `num_labels` or `id2label`) at least 1, and every class name a string."""
        if self.num_labels < 1:
            raise ValueError(f"`num_labels` must be at least 1 (or `id2label` name one class), got {self.num_labels}.")
        names = [name for name in self.id2label.values() if not isinstance(name, str)]
        if names:
            raise TypeError(f"`id2label` must map class ids to strings, got {names[0]!r} ({type(names[0]).__name__}).")

    def _set_official_conv_defaults(self) -> None:
        """The official `stride = max(1, kernel // 2 - 1)` and `padding = max(1, kernel // 2)` when not given."""
        if self.conv_stride is None:
            self.conv_stride = max(1, self.conv_kernel_size // 2 - 1)
        if self.conv_padding is None:
            self.conv_padding = max(1, self.conv_kernel_size // 2)

    def _check_encoder_arguments(self) -> None:
        for name, allowed in self.choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` must be divisible by `num_attention_heads`, got hidden_size={self.hidden_size} and "
                f"num_attention_heads={self.num_attention_heads}."
            )

    @classmethod
    def from_preset(cls, name: str, **overrides: Any):
        """Builds the configuration of an official variant (a key of `cls.presets`), e.g. `"cct_7_3x1_32_sine"` or
        `"text_cct_2"`.

        `overrides` replace preset values (e.g. `num_labels=100`); passing `id2label` replaces the preset's class
        count.
        """
        if name not in cls.presets:
            raise ValueError(f"Unknown {cls.family} preset {name!r}; expected one of: {', '.join(cls.presets)}.")
        arguments = dict(cls.presets[name])
        if "id2label" in overrides:
            arguments.pop("num_labels", None)
        arguments.update(overrides)
        return cls(**arguments)


class CCTConfig(CompactTransformerConfigMixin, PreTrainedConfig):
    r"""
    Configuration of [`CCTModel`] and [`CCTForImageClassification`]. One configuration covers the whole family of
    "Escaping the Big Data Paradigm with Compact Transformers":

    - **ViT-Lite**: `tokenizer_type="patch"`, `pooling_type="cls"`;
    - **CVT**: `tokenizer_type="patch"`, `pooling_type="seq_pool"`;
    - **CCT**: `tokenizer_type="conv"`, `pooling_type="seq_pool"`.

    The defaults give CCT-7/3x1 at 32 px (`cct_7_3x1_32`). Every official variant is available by name through
    [`CCTConfig.from_preset`] (see `CCT_PRESETS`).

    Args:
        image_size (`int`, defaults to 32): input resolution (square) the position embeddings are built for.
        num_channels (`int`, defaults to 3): input channels.
        tokenizer_type (`str`, defaults to `"conv"`): `"conv"` = CCT tokenizer (`num_conv_layers` x [Conv2d without
            bias, ReLU, MaxPool2d]); `"patch"` = one Conv2d with kernel = stride = `patch_size` and a bias.
        patch_size (`int`, defaults to 4): patch size of the `"patch"` tokenizer; `image_size` must be divisible by it.
        num_conv_layers (`int`, defaults to 1): convolutions of the `"conv"` tokenizer.
        conv_kernel_size (`int`, defaults to 3): kernel size of those convolutions.
        conv_stride (`int`, *optional*): their stride; defaults to the official `max(1, conv_kernel_size // 2 - 1)`.
        conv_padding (`int`, *optional*): their padding; defaults to the official `max(1, conv_kernel_size // 2)`.
        conv_intermediate_channels (`int`, defaults to 64): output channels of every convolution but the last one
            (the last one outputs `hidden_size`).
        pooling_kernel_size (`int`, defaults to 3), pooling_stride (`int`, defaults to 2),
        pooling_padding (`int`, defaults to 1): the max-pool after every convolution of the `"conv"` tokenizer.
        hidden_size (`int`, defaults to 256): token width.
        num_hidden_layers (`int`, defaults to 7): encoder layers.
        num_attention_heads (`int`, defaults to 4): attention heads (`hidden_size` must be divisible by it).
        intermediate_size (`int`, defaults to 512): hidden width of the MLP (official `hidden_size * mlp_ratio`).
        hidden_act (`str`, defaults to `"gelu"`): MLP activation (exact erf GELU in the official code).
        hidden_dropout_prob (`float`, defaults to 0.0): dropout on the embeddings, the attention output projection
            and both MLP linears.
        attention_probs_dropout_prob (`float`, defaults to 0.1): dropout on the attention probabilities.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth of the last layer; layer `i` uses
            `linspace(0, drop_path_rate, num_hidden_layers)[i]`.
        position_embedding_type (`str`, defaults to `"learnable"`): `"learnable"`, `"sine"` (fixed sinusoidal table,
            not a parameter) or `"none"`.
        pooling_type (`str`, defaults to `"seq_pool"`): `"seq_pool"` (attention-weighted average of the tokens) or
            `"cls"` (a class token is prepended and its final state is the pooled output).
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm.
        initializer_range (`float`, defaults to 0.02): std of the truncated normal init of every Linear.
        position_embedding_init_std (`float`, defaults to 0.2): std of the learnable position embeddings' init
            (the official value, ten times ViT's).

    Example:

    ```python
    >>> from hf_compact import CCTConfig, CCTForImageClassification

    >>> config = CCTConfig.from_preset("cct_7_3x1_32", num_labels=100)
    >>> model = CCTForImageClassification(config)
    ```
    """

    model_type = "cct"
    presets = CCT_PRESETS
    family = "CCT"
    choices = {
        "tokenizer_type": _TOKENIZER_TYPES,
        "position_embedding_type": _POSITION_EMBEDDING_TYPES,
        "pooling_type": _POOLING_TYPES,
    }

    image_size: int = 32
    num_channels: int = 3
    tokenizer_type: str = "conv"
    patch_size: int = 4
    num_conv_layers: int = 1
    conv_kernel_size: int = 3
    conv_stride: int | None = None
    conv_padding: int | None = None
    conv_intermediate_channels: int = 64
    pooling_kernel_size: int = 3
    pooling_stride: int = 2
    pooling_padding: int = 1
    hidden_size: int = 256
    num_hidden_layers: int = 7
    num_attention_heads: int = 4
    intermediate_size: int = 512
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.1
    drop_path_rate: float = 0.1
    position_embedding_type: str = "learnable"
    pooling_type: str = "seq_pool"
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    position_embedding_init_std: float = 0.2

    def __post_init__(self, **kwargs):
        self._check_field_types()
        self._set_official_conv_defaults()
        super().__post_init__(**kwargs)
        self._check_field_ranges()
        self._check_labels()
        self._check_encoder_arguments()
        if self.tokenizer_type == "patch" and self.image_size % self.patch_size != 0:
            raise ValueError(
                f"`image_size` must be divisible by `patch_size` for the patch tokenizer, got image_size="
                f"{self.image_size} and patch_size={self.patch_size}."
            )

    @property
    def paper_name(self) -> str:
        """The paper's name of this variant: `CCT-7/3x1` (layers / kernel x convolutions), `CVT-7/4` or
        `ViT-Lite-7/4` (layers / patch size)."""
        if self.tokenizer_type == "conv":
            return f"CCT-{self.num_hidden_layers}/{self.conv_kernel_size}x{self.num_conv_layers}"
        family = "CVT" if self.pooling_type == "seq_pool" else "ViT-Lite"
        return f"{family}-{self.num_hidden_layers}/{self.patch_size}"


__all__ = ["CCT_PRESETS", "CCTConfig", "CompactTransformerConfigMixin"]
