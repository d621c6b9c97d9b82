"""Text CCT sequence classifiers and their tokenizers, as the text recipes build them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from ..cct import TextCCTConfig, TextCCTForSequenceClassification
from ..cct.tokenization_text_cct import load_word_vectors, train_word_level_tokenizer
from ..data.loading import load_text_classification_data, quiet_progress_bars
from ..utils.overrides import check_override_keys, init_keywords, parse_overrides


def build_text_tokenizer(
    train_dataset: Dataset,
    text_column: str,
    max_seq_length: int,
    tokenizer_name: str | None = None,
    model_name_or_path: str | None = None,
    vocab_size: int = 100000,
    min_frequency: int = 1,
) -> PreTrainedTokenizerBase:
    """``tokenizer_name``'s tokenizer, else the saved model's, else a word-level vocabulary of the training texts
    (the official NLP models' choice)."""
    source = tokenizer_name or model_name_or_path
    if source is not None:
        tokenizer = AutoTokenizer.from_pretrained(source)
        tokenizer.padding_side = "right"
        if tokenizer.pad_token is None:
            raise ValueError(f"--tokenizer_name: the tokenizer of {source!r} has no padding token.")
        return tokenizer
    return train_word_level_tokenizer(
        train_dataset,
        text_column=text_column,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        model_max_length=max_seq_length,
    )


def tokenize_for_classification(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, text_column: str, label_column: str, max_length: int
) -> Dataset:
    """``dataset`` as ``input_ids``, ``attention_mask`` (texts truncated to ``max_length`` tokens) and ``labels``
    columns, ready for ``DataCollatorWithPadding``."""

    def tokenize(rows: dict) -> dict:
        encoded = tokenizer(rows[text_column], truncation=True, max_length=max_length)
        return {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": rows[label_column],
        }

    with quiet_progress_bars():  # seconds of work on texts already in memory
        return dataset.map(tokenize, batched=True, remove_columns=dataset.column_names)


def build_text_classifier(
    label_names: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    preset: str | None = None,
    model_name_or_path: str | None = None,
    config_overrides: Mapping | None = None,
    ignore_mismatched_sizes: bool = False,
    word_vectors: str | None = None,
    freeze_word_vectors: bool = False,
) -> TextCCTForSequenceClassification:
    """A fresh ``preset`` sized for ``tokenizer``'s vocabulary and ``max_seq_length`` words (with
    ``config_overrides``), or the saved ``model_name_or_path``, classifying ``label_names``; ``word_vectors``
    (GloVe text, ``.npy``, ``.safetensors``) are loaded into its word embeddings."""
    if (preset is None) == (model_name_or_path is None):
        raise ValueError(
            f"preset / model_name_or_path: expected exactly one of them, got {preset!r} and {model_name_or_path!r}."
        )
    id2label = dict(enumerate(label_names))
    label2id = {name: index for index, name in id2label.items()}
    vectors = None
    if word_vectors is not None:
        vectors = load_word_vectors(word_vectors, vocab=tokenizer.get_vocab())
        if vectors.shape[0] != len(tokenizer):
            raise ValueError(
                f"--word_vectors: expected one vector per token of the {len(tokenizer)}-token vocabulary, got "
                f"{vectors.shape[0]}."
            )
    if preset is not None:
        check_override_keys(config_overrides or {}, init_keywords(TextCCTConfig))
        overrides = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "max_position_embeddings": max_seq_length,
            **(config_overrides or {}),
        }
        if vectors is not None:
            overrides["word_embedding_dim"] = vectors.shape[1]
        config = TextCCTConfig.from_preset(preset, id2label=id2label, label2id=label2id, **overrides)
        model = TextCCTForSequenceClassification(config)
    else:
        if config_overrides:
            raise ValueError("--config_overrides: expected no overrides for a saved model (--model_name_or_path).")
        with quiet_progress_bars():
            model = AutoModelForSequenceClassification.from_pretrained(
                model_name_or_path,
                id2label=id2label,
                label2id=label2id,
                ignore_mismatched_sizes=ignore_mismatched_sizes,
            )
    config = model.config
    if config.position_embedding_type != "none" and max_seq_length > config.max_position_embeddings:
        raise ValueError(
            f"--max_seq_length: the model's position embeddings cover {config.max_position_embeddings} words, got "
            f"{max_seq_length}."
        )
    if vectors is not None:
        model.set_word_vectors(vectors, freeze=freeze_word_vectors)
    return model


__all__ = ["build_text_classifier", "build_text_tokenizer", "tokenize_for_classification"]


def text_classification_data(
    data_options, model_options, seed: int
) -> tuple[Dataset, Dataset, list[str], PreTrainedTokenizerBase]:
    """The tokenized training and evaluation splits, the class names and the tokenizer that the text recipes' flags
    describe (load them on the main process first).

    ``data_options`` carries the data flags (``dataset_name``, ``train_file``, ``text_column_name``,
    ``max_seq_length``, ...) and ``model_options`` the tokenizer flags (``tokenizer_name``, ``model_name_or_path``,
    ``vocab_size``, ``min_frequency``), as attributes: one argparse namespace for both, or a ``Trainer`` script's
    two options dataclasses.
    """
    train_dataset, eval_dataset, label_names = load_text_classification_data(
        data_options.dataset_name,
        data_options.dataset_config_name,
        data_options.train_file,
        data_options.validation_file,
        text_column=data_options.text_column_name,
        label_column=data_options.label_column_name,
        held_out_fraction=data_options.train_val_split,
        max_train_samples=data_options.max_train_samples,
        max_eval_samples=data_options.max_eval_samples,
        seed=seed,
    )
    tokenizer = build_text_tokenizer(
        train_dataset,
        data_options.text_column_name,
        data_options.max_seq_length,
        tokenizer_name=model_options.tokenizer_name,
        model_name_or_path=model_options.model_name_or_path,
        vocab_size=model_options.vocab_size,
        min_frequency=model_options.min_frequency,
    )
    columns = (data_options.text_column_name, data_options.label_column_name, data_options.max_seq_length)
    train_dataset, eval_dataset = (
        tokenize_for_classification(dataset, tokenizer, *columns) for dataset in (train_dataset, eval_dataset)
    )
    return train_dataset, eval_dataset, label_names, tokenizer


def text_classifier(
    model_options, label_names: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_seq_length: int
) -> TextCCTForSequenceClassification:
    """:func:`build_text_classifier` from the text recipes' model flags (``preset``, ``model_name_or_path``,
    ``config_overrides``, ``ignore_mismatched_sizes``, ``word_vectors``, ``freeze_word_vectors``) on
    ``model_options``."""
    return build_text_classifier(
        label_names,
        tokenizer,
        max_seq_length,
        preset=model_options.preset,
        model_name_or_path=model_options.model_name_or_path,
        config_overrides=parse_overrides(model_options.config_overrides),
        ignore_mismatched_sizes=model_options.ignore_mismatched_sizes,
        word_vectors=model_options.word_vectors,
        freeze_word_vectors=model_options.freeze_word_vectors,
    )
