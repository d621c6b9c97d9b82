"""Configuration of the text variants of Compact Transformers: TextTransformerLite, TextViTLite, TextCVT and TextCCT.

This file may import only `torch`, `transformers` and sibling files: `register_for_auto_class` copies it next to
the weights for `trust_remote_code` users.
"""

from typing import Any

from transformers import PreTrainedConfig

from .configuration_cct import CompactTransformerConfigMixin

# Encoder sizes of the official `text_*_{2,4,6}` builders: (layers, heads, mlp_ratio, width).
_SIZE_2_128 = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 128, "intermediate_size": 128}
_SIZE_4_128 = {"num_hidden_layers": 4, "num_attention_heads": 2, "hidden_size": 128, "intermediate_size": 128}
_SIZE_6_128 = {"num_hidden_layers": 6, "num_attention_heads": 4, "hidden_size": 128, "intermediate_size": 256}
_SIZE_6_256 = {"num_hidden_layers": 6, "num_attention_heads": 4, "hidden_size": 256, "intermediate_size": 512}
# TextTransformerLite has no tokenizer: its width is the word-vector width (300).
_SIZE_2_300 = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 300, "intermediate_size": 300}
_SIZE_4_300 = {"num_hidden_layers": 4, "num_attention_heads": 2, "hidden_size": 300, "intermediate_size": 300}
_SIZE_6_300 = {"num_hidden_layers": 6, "num_attention_heads": 4, "hidden_size": 300, "intermediate_size": 600}

_TRANSFORMER = {"tokenizer_type": "none", "pooling_type": "cls"}
_VIT = {"tokenizer_type": "patch", "patch_size": 4, "pooling_type": "cls"}
_CVT = {"tokenizer_type": "patch", "patch_size": 4, "pooling_type": "seq_pool"}
_CCT = {"tokenizer_type": "conv", "conv_kernel_size": 4, "pooling_type": "seq_pool"}
# Defaults of every official text builder: 100k x 300 word embeddings, 64 words, 1000 classes, sine PE.
_OFFICIAL = {
    "vocab_size": 100000,
    "word_embedding_dim": 300,
    "max_position_embeddings": 64,
    "num_labels": 1000,
}

TEXT_CCT_PRESETS: dict[str, dict[str, Any]] = {
    "text_transformer_2": {**_OFFICIAL, **_TRANSFORMER, **_SIZE_2_300},
    "text_transformer_4": {**_OFFICIAL, **_TRANSFORMER, **_SIZE_4_300},
    "text_transformer_6": {**_OFFICIAL, **_TRANSFORMER, **_SIZE_6_300},
    "text_vit_2": {**_OFFICIAL, **_VIT, **_SIZE_2_128},
    "text_vit_4": {**_OFFICIAL, **_VIT, **_SIZE_4_128},
    "text_vit_6": {**_OFFICIAL, **_VIT, **_SIZE_6_256},
    "text_cvt_2": {**_OFFICIAL, **_CVT, **_SIZE_2_128},
    "text_cvt_4": {**_OFFICIAL, **_CVT, **_SIZE_4_128},
    # The official TextCVT-6 is 128 wide, unlike TextViT-6 and TextCCT-6 (256): kept as published.
    "text_cvt_6": {**_OFFICIAL, **_CVT, **_SIZE_6_128},
    "text_cct_2": {**_OFFICIAL, **_CCT, **_SIZE_2_128},
    "text_cct_4": {**_OFFICIAL, **_CCT, **_SIZE_4_128},
    "text_cct_6": {**_OFFICIAL, **_CCT, **_SIZE_6_256},
}
"""The official text builders (SHI-Labs/Compact-Transformers `src/text`) by name, with their defaults, as
`TextCCTConfig` arguments. Override e.g. `conv_kernel_size=1, num_labels=4` for the NLP README's models."""

_TOKENIZER_TYPES = ("conv", "patch", "none")
_POSITION_EMBEDDING_TYPES = ("learnable", "sine", "none")
_POOLING_TYPES = ("seq_pool", "cls")


class TextCCTConfig(CompactTransformerConfigMixin, PreTrainedConfig):
    r"""
    Configuration of [`TextCCTModel`] and [`TextCCTForSequenceClassification`]: word embeddings, an optional 1-D
    convolutional tokenizer over them, the CCT encoder and a pooling + linear head. One configuration covers the four
    official text families:

    | family | `tokenizer_type` | `pooling_type` |
    |---|---|---|
    | TextTransformerLite | `"none"` (`hidden_size == word_embedding_dim`) | `"cls"` |
    | TextViTLite | `"patch"` | `"cls"` |
    | TextCVT | `"patch"` | `"seq_pool"` |
    | TextCCT | `"conv"` | `"seq_pool"` |

    The defaults give the official `text_cct_2` (kernel 4) apart from the class count. Every official builder is
    available by name through [`TextCCTConfig.from_preset`] (see `TEXT_CCT_PRESETS`).

    Args:
        vocab_size (`int`, defaults to 100000): rows of the word-embedding table; every `input_ids` value must be
            below it.
        word_embedding_dim (`int`, defaults to 300): width of the word vectors (any width works; the official
            tokenizer only works with 300).
        pad_token_id (`int`, defaults to 1): id of the padding token; its word vector is initialised to zero and gets
            no gradient (the official `padding_idx=1`).
        freeze_word_embeddings (`bool`, defaults to `False`): keep the word vectors fixed during training (e.g. when
            they are pretrained GloVe/word2vec vectors).
        word_embedding_init_std (`float`, defaults to 1.0): std of the normal init of the word vectors (PyTorch's
            `nn.Embedding` default, as in the official code).
        max_position_embeddings (`int`, defaults to 64): longest input, in words (the official `seq_len`); the
            position embeddings are built for the number of tokens such an input gives.
        tokenizer_type (`str`, defaults to `"conv"`): how word vectors become tokens. `"conv"` (TextCCT): a 1-D
            convolution over time without bias, ReLU and max-pooling; `"patch"` (TextViTLite, TextCVT): a 1-D
            convolution with kernel = stride = `patch_size`, no bias, no activation; `"none"` (TextTransformerLite):
            the word vectors are the tokens.
        patch_size (`int`, defaults to 4): words per token of the `"patch"` tokenizer.
        conv_kernel_size (`int`, defaults to 4): kernel of the `"conv"` tokenizer (the NLP README uses 1, 2 and 4).
        conv_stride (`int`, *optional*): its stride; defaults to the official `max(1, conv_kernel_size // 2 - 1)`.
        conv_padding (`int`, *optional*): its zero padding; defaults to the official `max(1, conv_kernel_size // 2)`.
        pooling_kernel_size (`int`, defaults to 2), pooling_stride (`int`, defaults to 2),
        pooling_padding (`int`, defaults to 1): the max-pooling of the `"conv"` tokenizer.
        hidden_size (`int`, defaults to 128): token width.
        num_hidden_layers (`int`, defaults to 2): encoder layers.
        num_attention_heads (`int`, defaults to 2): attention heads (`hidden_size` must be divisible by it).
        intermediate_size (`int`, defaults to 128): hidden width of the MLP (official `hidden_size * mlp_ratio`).
        hidden_act (`str`, defaults to `"gelu"`): MLP activation.
        hidden_dropout_prob (`float`, defaults to 0.0): dropout on the embeddings, the attention output projection
            and the MLP.
        attention_probs_dropout_prob (`float`, defaults to 0.1): dropout on the attention probabilities.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth of the last layer (linear schedule from 0).
        position_embedding_type (`str`, defaults to `"sine"`): `"sine"` (fixed table), `"learnable"` or `"none"`.
            Unlike the official text models (which only run with `"none"`), all three work.
        pooling_type (`str`, defaults to `"seq_pool"`): `"seq_pool"` (attention-weighted average of the tokens) or
            `"cls"` (a class token is prepended; its final state is the pooled output).
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm.
        initializer_range (`float`, defaults to 0.02): std of the truncated normal init of every Linear.
        position_embedding_init_std (`float`, defaults to 0.2): std of the learnable position embeddings' init.

    Example:

    ```python
    >>> from hf_compact import TextCCTConfig, TextCCTForSequenceClassification

    >>> config = TextCCTConfig.from_preset("text_cct_2", conv_kernel_size=1, num_labels=4)
    >>> model = TextCCTForSequenceClassification(config)
    ```
    """

    model_type = "text_cct"
    presets = TEXT_CCT_PRESETS
    family = "text CCT"
    choices = {
        "tokenizer_type": _TOKENIZER_TYPES,
        "position_embedding_type": _POSITION_EMBEDDING_TYPES,
        "pooling_type": _POOLING_TYPES,
    }

    vocab_size: int = 100000
    word_embedding_dim: int = 300
    pad_token_id: int | None = 1
    freeze_word_embeddings: bool = False
    word_embedding_init_std: float = 1.0
    max_position_embeddings: int = 64
    tokenizer_type: str = "conv"
    patch_size: int = 4
    conv_kernel_size: int = 4
    conv_stride: int | None = None
    conv_padding: int | None = None
    pooling_kernel_size: int = 2
    pooling_stride: int = 2
    pooling_padding: int = 1
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.1
    drop_path_rate: float = 0.1
    position_embedding_type: str = "sine"
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
        if self.tokenizer_type == "none" and self.hidden_size != self.word_embedding_dim:
            raise ValueError(
                "Without a tokenizer (`tokenizer_type='none'`) the word vectors are the tokens, so `hidden_size` must "
                f"equal `word_embedding_dim`, got hidden_size={self.hidden_size} and "
                f"word_embedding_dim={self.word_embedding_dim}."
            )
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"`pad_token_id` must be in [0, vocab_size={self.vocab_size}), got {self.pad_token_id}.")

    @property
    def paper_name(self) -> str:
        """The official class name of this variant: `TextCCT-2`, `TextCVT-2`, `TextViTLite-2` or
        `TextTransformerLite-2` (the number is the encoder depth)."""
        family = {"conv": "CCT", "none": "TransformerLite"}.get(self.tokenizer_type)
        family = family or ("CVT" if self.pooling_type == "seq_pool" else "ViTLite")
        return f"Text{family}-{self.num_hidden_layers}"


__all__ = ["TEXT_CCT_PRESETS", "TextCCTConfig"]
