"""Train a text Compact Transformer (TextCCT / TextCVT / TextViTLite / TextTransformerLite) sequence classifier with
Accelerate.

Flags follow transformers' `examples/pytorch/text-classification/run_glue_no_trainer.py`: a Hub dataset
(`--dataset_name ag_news`) or local CSV / JSON files (`--train_file`, `--validation_file`) with a text and a label
column; `--preset text_cct_2 --config_overrides conv_kernel_size=1` trains from scratch, `--model_name_or_path`
fine-tunes a saved model. Words are embedded with a tokenizer from `--tokenizer_name`, the model folder, or (by
default, as in the official NLP models) a word-level vocabulary trained on the training texts; `--word_vectors`
loads pretrained vectors (GloVe text, `.npy`, `.safetensors`) into it, frozen with `--freeze_word_vectors`.

Run with `accelerate launch training/train_text_cct.py --config training/configs/text_cct_2_k1_agnews.yaml` (or
`torchrun --nproc_per_node N`, or plain `python`). `main(argv)` returns the final evaluation metrics; the output
folder holds the model and its tokenizer, loadable with `pipeline("text-classification", model=...)`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from datasets import ClassLabel, Dataset, DatasetDict, load_dataset
from tqdm.auto import tqdm
from train_cct import build_optimizer, parse_config_overrides
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    SchedulerType,
    get_scheduler,
)

from hf_compact.cct.configuration_text_cct import TextCCTConfig
from hf_compact.cct.modeling_text_cct import TextCCTForSequenceClassification
from hf_compact.cct.tokenization_text_cct import load_word_vectors, train_word_level_tokenizer
from hf_compact.metrics.accuracy import Accuracy
from hf_compact.training_utils import (
    TrainingRun,
    add_run_arguments,
    build_accelerator,
    check_run_arguments,
    parse_args_with_config,
    prepare_output_dir,
    updates_per_epoch,
)

EVAL_SPLIT_NAMES = ("validation", "valid", "test")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument(
        "--preset", type=str, default=None, help="Official builder to train from scratch, e.g. text_cct_2."
    )
    model.add_argument(
        "--model_name_or_path", type=str, default=None, help="Saved model (folder or Hub id) to fine-tune."
    )
    model.add_argument(
        "--config_overrides",
        type=str,
        default=None,
        help='Config values replacing the preset\'s, e.g. "conv_kernel_size=1,position_embedding_type=learnable".',
    )
    model.add_argument(
        "--ignore_mismatched_sizes", action="store_true", help="Re-initialise a classifier of another size."
    )

    vocabulary = parser.add_argument_group("vocabulary")
    vocabulary.add_argument(
        "--tokenizer_name", type=str, default=None, help="Any transformers tokenizer (folder or Hub id)."
    )
    vocabulary.add_argument(
        "--vocab_size", type=int, default=100000, help="Word-level vocabulary size (trained tokenizer)."
    )
    vocabulary.add_argument(
        "--min_frequency", type=int, default=1, help="Rarer words become <unk> (trained tokenizer)."
    )
    vocabulary.add_argument(
        "--word_vectors",
        type=str,
        default=None,
        help="Pretrained word vectors: GloVe .txt, .npy, .safetensors.",
    )
    vocabulary.add_argument("--freeze_word_vectors", action="store_true", help="Keep the --word_vectors fixed.")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", type=str, default=None, help="Hub dataset, e.g. ag_news or trec.")
    data.add_argument("--dataset_config_name", type=str, default=None)
    data.add_argument("--train_file", type=str, default=None, help="CSV or JSON (lines) file with the training data.")
    data.add_argument("--validation_file", type=str, default=None, help="CSV or JSON (lines) file for the evaluation.")
    data.add_argument(
        "--train_val_split", type=float, default=0.1, help="Held-out fraction when there is no eval split."
    )
    data.add_argument("--text_column_name", type=str, default="text")
    data.add_argument("--label_column_name", type=str, default="label")
    data.add_argument("--max_seq_length", type=int, default=64, help="Words per text (longer ones are truncated).")
    data.add_argument("--max_train_samples", type=int, default=None, help="Truncate the training set (quick runs).")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Truncate the evaluation set (quick runs).")

    optimization = parser.add_argument_group("optimization")
    optimization.add_argument("--per_device_train_batch_size", type=int, default=64)
    optimization.add_argument("--per_device_eval_batch_size", type=int, default=256)
    optimization.add_argument("--learning_rate", type=float, default=1e-3)
    optimization.add_argument(
        "--weight_decay", type=float, default=0.05, help="AdamW weight decay (not on 1-D parameters)."
    )
    optimization.add_argument("--adam_beta1", type=float, default=0.9)
    optimization.add_argument("--adam_beta2", type=float, default=0.999)
    optimization.add_argument("--adam_epsilon", type=float, default=1e-8)
    optimization.add_argument("--lr_scheduler_type", type=SchedulerType, default="cosine", choices=list(SchedulerType))
    optimization.add_argument("--num_warmup_steps", type=int, default=0)
    optimization.add_argument("--num_train_epochs", type=int, default=10)
    optimization.add_argument("--gradient_accumulation_steps", type=int, default=1)
    optimization.add_argument("--max_grad_norm", type=float, default=None)
    optimization.add_argument("--label_smoothing", type=float, default=0.1)
    optimization.add_argument("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"])

    add_run_arguments(parser)

    args = parse_args_with_config(parser, argv)
    check_run_arguments(args)
    if (args.preset is None) == (args.model_name_or_path is None):
        raise ValueError(
            "--preset / --model_name_or_path: expected exactly one of them (train from scratch or fine-tune), got "
            f"{args.preset!r} and {args.model_name_or_path!r}."
        )
    if args.dataset_name is None and args.train_file is None:
        raise ValueError(
            "--dataset_name / --train_file: expected one of them (a Hub dataset or a CSV / JSON file), got neither."
        )
    return args


def load_text_classification_splits(args: argparse.Namespace) -> tuple[Dataset, Dataset, list[str]]:
    """Training and evaluation splits, whose label column holds class ids, and the class names (a `ClassLabel`'s
    names, or the sorted distinct labels of the training split)."""
    if args.dataset_name is not None:
        splits = load_dataset(args.dataset_name, args.dataset_config_name)
    else:
        data_files = {"train": args.train_file}
        if args.validation_file is not None:
            data_files["validation"] = args.validation_file
        extension = Path(args.train_file).suffix.lstrip(".")
        splits = load_dataset("json" if extension in ("json", "jsonl") else extension, data_files=data_files)
    eval_split = next((name for name in EVAL_SPLIT_NAMES if name in splits), None)
    if eval_split is None:
        held_out = splits["train"].train_test_split(test_size=args.train_val_split, seed=args.seed)
        splits = DatasetDict(train=held_out["train"], validation=held_out["test"])
        eval_split = "validation"
    train_dataset, eval_dataset = splits["train"], splits[eval_split]
    for column in (args.text_column_name, args.label_column_name):
        if column not in train_dataset.column_names:
            raise ValueError(
                f"--text_column_name / --label_column_name: the dataset has columns {train_dataset.column_names}, "
                f"got {column!r}."
            )
    label_feature = train_dataset.features[args.label_column_name]
    if isinstance(label_feature, ClassLabel):
        label_names = list(label_feature.names)
    else:
        label_names = sorted({str(label) for label in train_dataset[args.label_column_name]})
        label_ids = {name: index for index, name in enumerate(label_names)}

        def encode_labels(rows: dict) -> dict:
            return {args.label_column_name: [label_ids[str(label)] for label in rows[args.label_column_name]]}

        train_dataset = train_dataset.map(encode_labels, batched=True)
        eval_dataset = eval_dataset.map(encode_labels, batched=True)
    if args.max_train_samples is not None:
        train_dataset = train_dataset.shuffle(seed=args.seed).select(
            range(min(args.max_train_samples, len(train_dataset)))
        )
    if args.max_eval_samples is not None:
        eval_dataset = eval_dataset.select(range(min(args.max_eval_samples, len(eval_dataset))))
    return train_dataset, eval_dataset, label_names


def build_tokenizer(args: argparse.Namespace, train_dataset: Dataset) -> PreTrainedTokenizerBase:
    """`--tokenizer_name`, else the fine-tuned model's tokenizer, else a word-level vocabulary of the training texts."""
    source = args.tokenizer_name or args.model_name_or_path
    if source is not None:
        tokenizer = AutoTokenizer.from_pretrained(source)
        tokenizer.padding_side = "right"
        if tokenizer.pad_token is None:
            raise ValueError(f"--tokenizer_name: the tokenizer of {source!r} has no padding token.")
        return tokenizer
    return train_word_level_tokenizer(
        train_dataset,
        text_column=args.text_column_name,
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        model_max_length=args.max_seq_length,
    )


def build_model(
    args: argparse.Namespace, label_names: list[str], tokenizer: PreTrainedTokenizerBase
) -> TextCCTForSequenceClassification:
    id2label = dict(enumerate(label_names))
    label2id = {name: index for index, name in id2label.items()}
    word_vectors = None
    if args.word_vectors is not None:
        word_vectors = load_word_vectors(args.word_vectors, vocab=tokenizer.get_vocab())
        if word_vectors.shape[0] != len(tokenizer):
            raise ValueError(
                f"--word_vectors: expected one vector per token of the {len(tokenizer)}-token vocabulary, got "
                f"{word_vectors.shape[0]}."
            )
    if args.preset is not None:
        overrides = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "max_position_embeddings": args.max_seq_length,
            **parse_config_overrides(args.config_overrides),
        }
        if word_vectors is not None:
            overrides["word_embedding_dim"] = word_vectors.shape[1]
        config = TextCCTConfig.from_preset(args.preset, id2label=id2label, label2id=label2id, **overrides)
        model = TextCCTForSequenceClassification(config)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            args.model_name_or_path,
            id2label=id2label,
            label2id=label2id,
            ignore_mismatched_sizes=args.ignore_mismatched_sizes,
        )
    config = model.config
    if config.position_embedding_type != "none" and args.max_seq_length > config.max_position_embeddings:
        raise ValueError(
            f"--max_seq_length: the model's position embeddings cover {config.max_position_embeddings} words, got "
            f"{args.max_seq_length}."
        )
    if word_vectors is not None:
        model.set_word_vectors(word_vectors, freeze=args.freeze_word_vectors)
    return model


@torch.no_grad()
def evaluate_accuracy(model, dataloader, accelerator: Accelerator, num_labels: int) -> dict[str, float]:
    """Top-1 (and top-5 with at least 5 classes) accuracy over the whole evaluation set, gathered from all ranks."""
    model.eval()
    metric = Accuracy(keep_in_memory=True)
    for batch in dataloader:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        metric.add_batch(predictions=logits.float().cpu().numpy(), references=labels.cpu().numpy())
    model.train()
    return metric.compute(top_k=(1, 5) if num_labels >= 5 else 1)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    accelerator = build_accelerator(args, args.output_dir)
    output_dir = prepare_output_dir(args, accelerator)
    set_seed(args.seed)

    with accelerator.main_process_first():
        train_dataset, eval_dataset, label_names = load_text_classification_splits(args)
        tokenizer = build_tokenizer(args, train_dataset)

        def tokenize(rows: dict) -> dict:
            encoded = tokenizer(rows[args.text_column_name], truncation=True, max_length=args.max_seq_length)
            return {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "labels": rows[args.label_column_name],
            }

        columns = ["input_ids", "attention_mask", "labels"]
        train_dataset = train_dataset.map(tokenize, batched=True, remove_columns=train_dataset.column_names)
        eval_dataset = eval_dataset.map(tokenize, batched=True, remove_columns=eval_dataset.column_names)
        train_dataset, eval_dataset = (
            train_dataset.select_columns(columns),
            eval_dataset.select_columns(columns),
        )
    model = build_model(args, label_names, tokenizer)

    collate = DataCollatorWithPadding(tokenizer)
    # A generator of its own keeps the global RNG (dropout, stochastic depth) untouched by the loader's seeding, so a
    # run resumed mid-epoch draws the same dropout masks as an uninterrupted one.
    train_dataloader = torch.utils.data.DataLoader(
        train_dataset,
        batch_size=args.per_device_train_batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(args.seed),
    )
    eval_dataloader = torch.utils.data.DataLoader(
        eval_dataset, batch_size=args.per_device_eval_batch_size, collate_fn=collate
    )
    if len(train_dataloader) == 0:
        raise ValueError(
            f"--per_device_train_batch_size: expected at most the {len(train_dataset)} training examples, got "
            f"{args.per_device_train_batch_size}."
        )

    optimizer = build_optimizer(model, args)
    model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader
    )
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch(
        len(train_dataloader), args.gradient_accumulation_steps
    )
    # The prepared scheduler steps once per process for every update (Accelerate's convention), hence the factor.
    lr_scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=args.num_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)
    run = TrainingRun(accelerator, args, train_dataloader, max_train_steps)
    run.init_trackers("train_text_cct")
    run.resume()

    accelerator.print(
        f"Training {accelerator.unwrap_model(model).num_parameters(only_trainable=True):,} trainable parameters on "
        f"{len(train_dataset)} texts ({len(label_names)} classes, vocabulary {len(tokenizer)}) for "
        f"{max_train_steps} updates, {accelerator.num_processes} process(es)."
    )
    progress_bar = tqdm(
        total=max_train_steps,
        initial=run.completed_steps,
        disable=not accelerator.is_local_main_process,
        desc="train",
    )
    train_losses: list[float] = []
    accumulated_loss = 0.0
    model.train()
    for batch in run:
        with accelerator.accumulate(model):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = F.cross_entropy(logits.float(), batch["labels"], label_smoothing=args.label_smoothing)
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        accumulated_loss += loss.item() / args.gradient_accumulation_steps
        if not accelerator.sync_gradients:
            continue
        train_losses.append(accumulated_loss)
        accumulated_loss = 0.0
        progress_bar.update(1)
        progress_bar.set_postfix(loss=f"{train_losses[-1]:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
        run.update_done()
        if args.with_tracking:
            accelerator.log(
                {"train_loss": train_losses[-1], "lr": lr_scheduler.get_last_lr()[0], "epoch": run.epoch},
                step=run.completed_steps,
            )
    progress_bar.close()
    run.save_final_checkpoint()

    eval_metrics = evaluate_accuracy(model, eval_dataloader, accelerator, len(label_names))
    results = {f"eval_{name}": value for name, value in eval_metrics.items()}
    results.update(
        train_loss=train_losses[-1] if train_losses else None,
        train_steps=run.completed_steps,
        train_seconds=round(run.train_seconds, 2),
    )
    accelerator.print(f"Evaluation: {json.dumps(results)}")
    if args.with_tracking:
        accelerator.log(results, step=run.completed_steps)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(output_dir, save_function=accelerator.save)
        tokenizer.save_pretrained(output_dir)
    run.finish(results)
    return {**results, "train_losses": train_losses}


if __name__ == "__main__":
    main()
