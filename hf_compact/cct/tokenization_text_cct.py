"""Word vocabularies for the text CCT models: train a word-level tokenizer on a dataset's text column, and read
pretrained word vectors (GloVe / word2vec text files, `.npy`, `.safetensors`) into a matrix for that vocabulary.

The official text models embed whole words (vocabulary of 100k, GloVe-style 300-d vectors, `<unk>` = 0 and
`<pad>` = 1). `train_word_level_tokenizer` builds that kind of vocabulary with the `tokenizers` library and returns
a `PreTrainedTokenizerFast`, which `save_pretrained` writes beside the model and `pipeline("text-classification")`
loads. Any other `transformers` tokenizer works as well: set `TextCCTConfig(vocab_size=len(tokenizer),
pad_token_id=tokenizer.pad_token_id)`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer
from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

UNK_TOKEN = "<unk>"
PAD_TOKEN = "<pad>"
# Same order as the official vocabulary (torchtext): `<unk>` = 0, `<pad>` = 1 = `TextCCTConfig().pad_token_id`.
SPECIAL_TOKENS = (UNK_TOKEN, PAD_TOKEN)


def train_word_level_tokenizer(
    texts: Iterable[str] | Iterable[Mapping[str, str]],
    text_column: str = "text",
    vocab_size: int = 100000,
    min_frequency: int = 1,
    lowercase: bool = True,
    model_max_length: int = 64,
    show_progress: bool = False,
) -> PreTrainedTokenizerFast:
    """Trains a word-level tokenizer (one id per word or punctuation run) on a corpus.

    Args:
        texts: strings, or rows with a `text_column` field (e.g. a `datasets.Dataset`, read in batches).
        text_column: column holding the text when `texts` yields rows.
        vocab_size: largest vocabulary, special tokens included; the most frequent words are kept.
        min_frequency: words seen fewer times become `<unk>`.
        lowercase: lowercase (after NFKC normalisation) before splitting.
        model_max_length: longest encoding; `truncation=True` cuts inputs to it (set it to the model's
            `max_position_embeddings`).
        show_progress: show the `tokenizers` training progress bar.

    Returns:
        A `PreTrainedTokenizerFast` with `<unk>` = 0 and `<pad>` = 1 (the official ids, equal to
        `TextCCTConfig().pad_token_id`), right padding and right truncation, producing `input_ids` and
        `attention_mask`.
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"`vocab_size` must be larger than the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}."
        )
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer = Tokenizer(WordLevel(unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = WordLevelTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=show_progress,
    )
    tokenizer.train_from_iterator(_iterate_texts(texts, text_column), trainer=trainer)
    if tokenizer.get_vocab_size() == len(SPECIAL_TOKENS):
        raise ValueError("`texts` contain no words: the trained vocabulary holds only the special tokens.")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
        model_input_names=["input_ids", "attention_mask"],
    )


def _iterate_texts(texts: Iterable[str] | Iterable[Mapping[str, str]], text_column: str) -> Iterator[str]:
    if hasattr(texts, "column_names") and hasattr(texts, "iter"):  # a `datasets.Dataset`: read the column in batches
        if text_column not in texts.column_names:
            raise ValueError(f"`text_column` {text_column!r} is not a column of the dataset {texts.column_names}.")
        for batch in texts.iter(batch_size=1000):
            yield from batch[text_column]
        return
    for item in texts:
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping) and isinstance(item.get(text_column), str):
            yield item[text_column]
        else:
            raise TypeError(
                f"`texts` must yield strings or mappings with a string {text_column!r} field, got "
                f"{type(item).__name__}."
            )


def load_word_vectors(
    path: str | os.PathLike,
    vocab: Mapping[str, int] | None = None,
    tensor_name: str | None = None,
) -> torch.Tensor:
    """Reads pretrained word vectors as a float32 matrix `(vocab_size, word_embedding_dim)`, ready for
    `TextCCTForSequenceClassification.set_word_vectors`.

    Args:
        path: `.npy` or `.safetensors` file holding the matrix in vocabulary order, or a text file in the GloVe /
            word2vec text format (`word v_1 ... v_d` per line; a word2vec `count dim` header line is skipped).
        vocab: word -> id (e.g. `tokenizer.get_vocab()`); required for text files. Rows of words missing from the
            file are zero.
        tensor_name: the tensor to read from a `.safetensors` file holding several.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path`: expected a word-vector file, got {str(path)!r}, which does not exist.")
    if path.suffix == ".npy":
        vectors = torch.from_numpy(np.load(path))
    elif path.suffix == ".safetensors":
        tensors = load_file(path)
        if tensor_name is None and len(tensors) != 1:
            raise ValueError(f"`tensor_name` is required: {path.name} holds several tensors {sorted(tensors)}.")
        if tensor_name is not None and tensor_name not in tensors:
            raise ValueError(f"`tensor_name` {tensor_name!r} is not in {path.name}; it holds {sorted(tensors)}.")
        vectors = tensors[tensor_name] if tensor_name is not None else next(iter(tensors.values()))
    else:
        if vocab is None:
            raise ValueError(f"`vocab` (word -> id) is required to read the text vector file {path.name}.")
        vectors = _read_text_vectors(path, vocab)
    if vectors.ndim != 2:
        raise ValueError(
            f"Word vectors in {path.name} must be a (vocab_size, dim) matrix, got shape {tuple(vectors.shape)}."
        )
    return vectors.to(torch.float32)


def _read_text_vectors(path: Path, vocab: Mapping[str, int]) -> torch.Tensor:
    vectors: torch.Tensor | None = None
    found = 0
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.rstrip().split(" ")
            if line_number == 1 and len(fields) == 2:  # word2vec header: "count dim"
                continue
            if vectors is None:
                vectors = torch.zeros(max(vocab.values()) + 1, len(fields) - 1)
            if len(fields) - 1 != vectors.shape[1]:
                raise ValueError(
                    f"{path.name}, line {line_number}: expected a word and {vectors.shape[1]} numbers, got "
                    f"{len(fields) - 1} numbers."
                )
            index = vocab.get(fields[0])
            if index is not None:
                vectors[index] = torch.tensor([float(value) for value in fields[1:]])
                found += 1
    if vectors is None:
        raise ValueError(f"{path.name} holds no word vectors.")
    logger.info("Read vectors for %d of %d vocabulary words from %s.", found, len(vocab), path.name)
    return vectors


__all__ = ["PAD_TOKEN", "SPECIAL_TOKENS", "UNK_TOKEN", "load_word_vectors", "train_word_level_tokenizer"]
