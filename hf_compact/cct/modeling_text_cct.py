"""PyTorch text variants of Compact Transformers: TextTransformerLite, TextViTLite, TextCVT and TextCCT.

word ids -> word embeddings -> (optional) 1-D convolutional tokenizer -> (class token) + position embeddings ->
CCT encoder -> final LayerNorm -> SeqPool or class token -> linear head. The encoder, its layers, the attention and
SeqPool are the vision ones (`modeling_cct.py`); this file adds only what is specific to text.

Differences from the official code (SHI-Labs/Compact-Transformers `src/text`), all documented bugs or limits there:
- sine and learnable position embeddings work (the official tables have one row too many, so only `"none"` runs);
- padding masks work through every family, with padding on either side (the real words are packed to the front);
  a padded batch gives the logits of each sequence run alone without padding, which is the official unmasked
  computation. (The official masked path, which does not run at HEAD, also marked tokens whose convolution window
  touched a real word only through zero padding as valid, so its result depended on the amount of padding.)
- the convolution is as wide as the word vectors, so any `word_embedding_dim` works (the official one needs 300).

This file may import only `torch`, `transformers` and sibling files: `register_for_auto_class` copies it next to
the weights for `trust_remote_code` users.
"""

from typing import TypeVar

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_text_cct import TextCCTConfig
from .modeling_cct import (
    CCTEncoder,
    CCTPositionalEmbeddings,
    CCTPreTrainedModel,
    CCTSequencePooling,
    check_classification_labels,
    check_tensor_argument,
    conv_output_size,
)

LengthT = TypeVar("LengthT", int, torch.Tensor)


def _positions_past_end(lengths: torch.Tensor, num_positions: int) -> torch.Tensor:
    """`(batch, num_positions)` bool, True where the position index is `>= lengths[batch]`."""
    return torch.arange(num_positions, device=lengths.device)[None, :] >= lengths[:, None]


def _pack_words_to_the_front(
    attention_mask: torch.Tensor, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Reorders every sequence so that its real words (`attention_mask` != 0) come first, in their order, and its
    padding after them: the right padding the tokenizer's windows and the position embeddings expect, whichever side
    the padding was on. The identity for right-padded input. `input_ids` `(batch, num_words)` / `inputs_embeds`
    `(batch, num_words, dim)` -> same shapes."""
    order = torch.argsort((attention_mask == 0).to(torch.uint8), dim=1, stable=True)
    if input_ids is not None:
        return input_ids.gather(1, order), None
    return None, inputs_embeds.gather(1, order[..., None].expand_as(inputs_embeds))


class TextCCTConvEmbeddings(nn.Module):
    """The paper's text "tokenizer" as a 1-D convolution over time (not a text tokenizer), `word_embeddings`
    `(batch, num_words, word_embedding_dim)` -> tokens `(batch, num_tokens, hidden_size)`.

    `"conv"` (TextCCT): Conv1d(kernel `conv_kernel_size`, no bias) -> ReLU -> MaxPool1d; `"patch"` (TextViTLite,
    TextCVT): Conv1d with kernel = stride = `patch_size`, no bias. Word vectors of padded positions must be zero.

    `word_lengths` `(batch,)` counts the real (left-aligned) words of every sequence; the returned token lengths
    count the tokens that exist when that sequence is run alone, and tokens past them are zero. Positions past a
    sequence's end are excluded from its max-pooling windows, so padding never changes the real tokens.
    """

    def __init__(self, config: TextCCTConfig):
        super().__init__()
        if config.tokenizer_type == "patch":
            kernel_size, stride, padding = config.patch_size, config.patch_size, 0
        else:
            kernel_size, stride, padding = config.conv_kernel_size, config.conv_stride, config.conv_padding
        self.convolution = nn.Conv1d(
            config.word_embedding_dim,
            config.hidden_size,
            kernel_size,
            stride=stride,
            padding=padding,
            bias=False,
        )
        if config.tokenizer_type == "conv":
            self.activation = nn.ReLU()
            self.pooling = nn.MaxPool1d(config.pooling_kernel_size, config.pooling_stride, config.pooling_padding)
        else:
            self.activation = nn.Identity()
            self.pooling = None

    def _convolution_lengths(self, word_lengths: LengthT) -> LengthT:
        kernel_size, stride, padding = (
            self.convolution.kernel_size[0],
            self.convolution.stride[0],
            self.convolution.padding[0],
        )
        return conv_output_size(word_lengths, kernel_size, stride, padding)

    def num_tokens(self, word_lengths: LengthT) -> LengthT:
        """Number of tokens of sequences of `word_lengths` words (`< 1` when a sequence is too short)."""
        lengths = self._convolution_lengths(word_lengths)
        if self.pooling is not None:
            lengths = conv_output_size(lengths, self.pooling.kernel_size, self.pooling.stride, self.pooling.padding)
        return lengths

    def forward(self, word_embeddings: torch.Tensor, word_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.activation(self.convolution(word_embeddings.transpose(1, 2)))  # (batch, hidden, positions)
        if self.pooling is not None:
            # Max-pooling pads with -inf: positions past a sequence's end must look like that padding, not like words.
            past_end = _positions_past_end(self._convolution_lengths(word_lengths), features.shape[-1])
            features = self.pooling(features.masked_fill(past_end[:, None, :], torch.finfo(features.dtype).min))
        tokens = features.transpose(1, 2)
        token_lengths = self.num_tokens(word_lengths)
        return tokens.masked_fill(_positions_past_end(token_lengths, tokens.shape[1])[..., None], 0.0), token_lengths


class TextCCTEmbeddings(CCTPositionalEmbeddings):
    """Word embeddings, tokenizer, optional class token, position embeddings and dropout.

    `input_ids` `(batch, num_words)` (or `inputs_embeds` `(batch, num_words, word_embedding_dim)`) and
    `word_lengths` `(batch,)` -> `(embeddings (batch, num_tokens, hidden_size), token_lengths (batch,))`, where
    `num_tokens` and `token_lengths` count the class token when there is one.
    """

    def __init__(self, config: TextCCTConfig):
        tokenizer = TextCCTConvEmbeddings(config) if config.tokenizer_type != "none" else None
        num_tokens = (
            tokenizer.num_tokens(config.max_position_embeddings) if tokenizer else config.max_position_embeddings
        )
        if num_tokens < 1:
            raise ValueError(
                f"`max_position_embeddings`={config.max_position_embeddings} words are too few for the tokenizer "
                f"(`tokenizer_type`={config.tokenizer_type!r}): they give no token."
            )
        super().__init__(config, num_tokens)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.word_embedding_dim, config.pad_token_id)
        self.word_embeddings.weight.requires_grad_(not config.freeze_word_embeddings)
        self.tokenizer = tokenizer
        word_counts = range(1, config.max_position_embeddings + 1)
        self.min_words = next(num_words for num_words in word_counts if self.num_tokens(num_words) > 0)

    def num_tokens(self, num_words: int) -> int:
        """Tokens (class token excluded) that the tokenizer makes of `num_words` words."""
        if self.tokenizer is None:
            return num_words
        return self.tokenizer.num_tokens(num_words)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        word_lengths: torch.Tensor,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        word_vectors = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        word_vectors = word_vectors.masked_fill(
            _positions_past_end(word_lengths, word_vectors.shape[1])[..., None], 0.0
        )
        if self.tokenizer is None:
            embeddings, token_lengths = word_vectors, word_lengths
        else:
            embeddings, token_lengths = self.tokenizer(word_vectors, word_lengths)
        embeddings = self.prepend_class_token(embeddings)
        token_lengths = token_lengths + self.num_prefix_tokens
        if self.position_embeddings is not None:
            embeddings = embeddings + self.position_embeddings[:, : embeddings.shape[1]]
        return self.dropout(embeddings), token_lengths


class TextCCTPreTrainedModel(CCTPreTrainedModel):
    config_class = TextCCTConfig
    config: TextCCTConfig
    base_model_prefix = "text_cct"
    main_input_name = "input_ids"
    input_modalities = ("text",)
    _no_split_modules = ["TextCCTEmbeddings", "CCTLayer"]
    _can_compile_fullgraph = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """The official initialisation: the vision one (truncated-normal Linear, Kaiming-normal convolutions,
        LayerNorm 1/0, class token and position embeddings) plus normal word vectors (std `word_embedding_init_std`)
        with a zero padding row."""
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=self.config.word_embedding_init_std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        else:
            super()._init_weights(module)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then re-freezes the word vectors when `config.freeze_word_embeddings`
        (loading replaces every parameter by a new, trainable one)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.get_input_embeddings().weight.requires_grad_(not model.config.freeze_word_embeddings)
        return loaded

    def set_word_vectors(self, word_vectors: torch.Tensor, freeze: bool = True) -> None:
        """Copies pretrained word vectors `(vocab_size, word_embedding_dim)` (e.g. from
        `hf_compact.cct.tokenization_text_cct.load_word_vectors`) into the word-embedding table.

        `freeze=True` keeps them fixed during training; the choice is stored in `config.freeze_word_embeddings`, so
        it survives `save_pretrained` / `from_pretrained`.
        """
        embedding = self.get_input_embeddings()
        if not isinstance(word_vectors, torch.Tensor):
            raise TypeError(f"`word_vectors` must be a torch.Tensor, got {type(word_vectors).__name__}.")
        if tuple(word_vectors.shape) != tuple(embedding.weight.shape):
            raise ValueError(
                f"`word_vectors` must have shape (vocab_size, word_embedding_dim) = {tuple(embedding.weight.shape)}, "
                f"got {tuple(word_vectors.shape)}."
            )
        with torch.no_grad():
            embedding.weight.copy_(word_vectors)
        embedding.weight.requires_grad_(not freeze)
        self.config.freeze_word_embeddings = freeze


class TextCCTModel(TextCCTPreTrainedModel):
    """The bare text encoder: word embeddings + tokenizer + position embeddings + CCT encoder + final LayerNorm, and
    the pooled representation (SeqPool or the class token).

    Output: `BaseModelOutputWithPooling` with `last_hidden_state` `(batch, num_tokens, hidden_size)` (after the final
    LayerNorm; tokens past a sequence's end are padding) and `pooler_output` `(batch, hidden_size)`.
    """

    def __init__(self, config: TextCCTConfig):
        super().__init__(config)
        self.embeddings = TextCCTEmbeddings(config)
        self.encoder = CCTEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = CCTSequencePooling(config) if config.pooling_type == "seq_pool" else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, num_words)`):
            Word ids in `[0, config.vocab_size)`, e.g. from a tokenizer.
        attention_mask (`torch.Tensor` of shape `(batch_size, num_words)`, *optional*):
            1 for real words, 0 for padding, on either side: the real words of every sequence are packed to the
            front, in order, before the convolutional tokenizer reads them (so left and right padding give the same
            outputs). Every sequence needs at least one word. Without it every position is a real word.
        inputs_embeds (`torch.FloatTensor` of shape `(batch_size, num_words, word_embedding_dim)`, *optional*):
            Word vectors to use instead of looking `input_ids` up.
        """
        word_lengths = self._word_lengths(input_ids, attention_mask, inputs_embeds)
        if attention_mask is not None:
            input_ids, inputs_embeds = _pack_words_to_the_front(attention_mask, input_ids, inputs_embeds)
        embeddings, token_lengths = self.embeddings(input_ids, word_lengths, inputs_embeds=inputs_embeds)
        token_mask = ~_positions_past_end(token_lengths, embeddings.shape[1])
        hidden_states = self.layernorm(self.encoder(embeddings, token_mask, **kwargs))
        pooled_output = self.pooler(hidden_states, token_mask) if self.pooler is not None else hidden_states[:, 0]
        return BaseModelOutputWithPooling(last_hidden_state=hidden_states, pooler_output=pooled_output)

    def _word_lengths(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        """Checks the inputs and returns the number of real words of every sequence, `(batch,)` int64.

        The checks of values (ids in range, no empty sequence, enough words) need the values on the host; they are
        skipped while `torch.compile` traces, so that a compiled forward has no graph break or host sync.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You have to specify exactly one of `input_ids` or `inputs_embeds`.")
        if input_ids is not None:
            check_tensor_argument("input_ids", input_ids, ("batch_size", "num_words"), "int")
            if not torch.compiler.is_compiling():
                out_of_range = (input_ids < 0) | (input_ids >= self.config.vocab_size)
                if out_of_range.any():
                    raise ValueError(
                        f"`input_ids` must be in [0, {self.config.vocab_size}) (config.vocab_size), got "
                        f"{input_ids[out_of_range].unique()[:10].tolist()}."
                    )
            batch_size, num_words = input_ids.shape
        else:
            shape = ("batch_size", "num_words", self.config.word_embedding_dim)
            check_tensor_argument("inputs_embeds", inputs_embeds, shape, "float")
            batch_size, num_words = inputs_embeds.shape[:2]
        device = self.embeddings.word_embeddings.weight.device
        if num_words == 0:
            raise ValueError(
                "The input sequences are empty (`num_words` = 0); every sequence needs at least one word."
            )
        if self.config.position_embedding_type != "none" and num_words > self.config.max_position_embeddings:
            raise ValueError(
                f"The input has {num_words} words per sequence, more than config.max_position_embeddings="
                f"{self.config.max_position_embeddings} that the position embeddings cover; truncate it."
            )
        if attention_mask is None:
            return self._check_enough_words(torch.full((batch_size,), num_words, dtype=torch.long, device=device))
        check_tensor_argument("attention_mask", attention_mask, (batch_size, num_words), None)
        word_lengths = (attention_mask != 0).sum(dim=1)
        if torch.compiler.is_compiling():
            return word_lengths.to(device)
        if (word_lengths == 0).any():
            raise ValueError(
                f"Sequences {(word_lengths == 0).nonzero().flatten().tolist()} are empty (their `attention_mask` row "
                "is all zeros); every sequence needs at least one word."
            )
        return self._check_enough_words(word_lengths.to(device))

    def _check_enough_words(self, word_lengths: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return word_lengths
        too_short = word_lengths < self.embeddings.min_words
        if too_short.any():
            raise ValueError(
                f"Sequences {too_short.nonzero().flatten().tolist()} have {word_lengths[too_short].tolist()} words, "
                f"fewer than the {self.embeddings.min_words} that the {self.config.tokenizer_type!r} tokenizer "
                f"(kernel {self.embeddings.tokenizer.convolution.kernel_size[0]}) needs to make a token."
            )
        return word_lengths


class TextCCTForSequenceClassification(TextCCTPreTrainedModel):
    """TextTransformerLite / TextViTLite / TextCVT / TextCCT with a linear classifier on the pooled output.

    Output: `SequenceClassifierOutput` with `logits` `(batch, num_labels)` and, when `labels` `(batch,)` are given,
    the loss of `config.problem_type` (cross-entropy for integer labels).
    """

    def __init__(self, config: TextCCTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.text_cct = TextCCTModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, num_words)`):
            Word ids in `[0, config.vocab_size)`, e.g. from a tokenizer.
        attention_mask (`torch.Tensor` of shape `(batch_size, num_words)`, *optional*):
            1 for real words, 0 for padding (on either side).
        inputs_embeds (`torch.FloatTensor` of shape `(batch_size, num_words, word_embedding_dim)`, *optional*):
            Word vectors to use instead of looking `input_ids` up.
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, config.num_labels)` (or `-100` to ignore a sample); float targets for regression
            (`num_labels == 1`) or multi-label classification.
        """
        outputs: BaseModelOutputWithPooling = self.text_cct(
            input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
        )
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            check_classification_labels(labels, logits, self.config)
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "TextCCTConvEmbeddings",
    "TextCCTEmbeddings",
    "TextCCTForSequenceClassification",
    "TextCCTModel",
    "TextCCTPreTrainedModel",
]
