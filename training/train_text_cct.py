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
import math
import time
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
from hf_compact.hub import push_to_hub
from hf_compact.metrics.accuracy import Accuracy
from hf_compact.training_utils import (
    build_accelerator,
    parse_args_with_config,
    resume_position,
    save_checkpoint,
)

EVAL_SPLIT_NAMES = ("validation", "valid", "test")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--preset", type=str, default=None, help="Official builder to train from scratch, e.g. text_cct_2.")
    model.add_argument("--model_name_or_path", type=str, default=None, help="Saved model (folder or Hub id) to fine-tune.")
    model.add_argument(
        "--config_overrides", type=str, default=None,
        help='Config values replacing the preset\'s, e.g. "conv_kernel_size=1,position_embedding_type=learnable".',
    )
    model.add_argument("--ignore_mismatched_sizes", action="store_true", help="Re-initialise a classifier of another size.")

    vocabulary = parser.add_argument_group("vocabulary")
    vocabulary.add_argument("--tokenizer_name", type=str, default=None, help="Any transformers tokenizer (folder or Hub id).")
    vocabulary.add_argument("--vocab_size", type=int, default=100000, help="Word-level vocabulary size (trained tokenizer).")
    vocabulary.add_argument("--min_frequency", type=int, default=1, help="Rarer words become <unk> (trained tokenizer).")
    vocabulary.add_argument("--word_vectors", type=str, default=None, help="Pretrained word vectors: GloVe .txt, .npy, .safetensors.")
    vocabulary.add_argument("--freeze_word_vectors", action="store_true", help="Keep the --word_vectors fixed.")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", type=str, default=None, help="Hub dataset, e.g. ag_news or trec.")
    data.add_argument("--dataset_config_name", type=str, default=None)
    data.add_argument("--train_file", type=str, default=None, help="CSV or JSON (lines) file with the training data.")
    data.add_argument("--validation_file", type=str, default=None, help="CSV or JSON (lines) file for the evaluation.")
    data.add_argument("--train_val_split", type=float, default=0.1, help="Held-out fraction when there is no eval split.")
    data.add_argument("--text_column_name", type=str, default="text")
    data.add_argument("--label_column_name", type=str, default="label")
    data.add_argument("--max_seq_length", type=int, default=64, help="Words per text (longer ones are truncated).")
    data.add_argument("--max_train_samples", type=int, default=None, help="Truncate the training set (quick runs).")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Truncate the evaluation set (quick runs).")

    optimization = parser.add_argument_group("optimization")
    optimization.add_argument("--per_device_train_batch_size", type=int, default=64)
    optimization.add_argument("--per_device_eval_batch_size", type=int, default=256)
    optimization.add_argument("--learning_rate", type=float, default=1e-3)
    optimization.add_argument("--weight_decay", type=float, default=0.05, help="AdamW weight decay (not on 1-D parameters).")
    optimization.add_argument("--adam_beta1", type=float, default=0.9)
    optimization.add_argument("--adam_beta2", type=float, default=0.999)
    optimization.add_argument("--adam_epsilon", type=float, default=1e-8)
    optimization.add_argument("--lr_scheduler_type", type=SchedulerType, default="cosine", choices=list(SchedulerType))
    optimization.add_argument("--num_warmup_steps", type=int, default=0)
    optimization.add_argument("--num_train_epochs", type=int, default=10)
    optimization.add_argument("--max_train_steps", type=int, default=None, help="Total updates; overrides the epochs.")
    optimization.add_argument("--gradient_accumulation_steps", type=int, default=1)
    optimization.add_argument("--max_grad_norm", type=float, default=None)
    optimization.add_argument("--label_smoothing", type=float, default=0.1)
    optimization.add_argument("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"])

    run = parser.add_argument_group("run")
    run.add_argument("--output_dir", type=str, default=None, help="Run folder (required; may come from --config).")
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--checkpointing_steps", type=int, default=None, help="Save the training state every N updates.")
    run.add_argument("--checkpoints_total_limit", type=int, default=None)
    run.add_argument("--resume_from_checkpoint", type=str, default=None, help="A checkpoint folder or 'latest'.")
    run.add_argument("--with_tracking", action="store_true")
    run.add_argument("--report_to", type=str, default="all")
    run.add_argument("--push_to_hub", action="store_true")
    run.add_argument("--hub_model_id", type=str, default=None)
    run.add_argument("--hub_token", type=str, default=None)

    args = parse_args_with_config(parser, argv)
    if args.output_dir is None:
        parser.error("pass --output_dir (or set output_dir in the --config file).")
    if (args.preset is None) == (args.model_name_or_path is None):
        parser.error("pass exactly one of --preset (train from scratch) and --model_name_or_path (fine-tune).")
    if args.dataset_name is None and args.train_file is None:
        parser.error("pass --dataset_name (a Hub dataset) or --train_file (a CSV / JSON file).")
    if args.push_to_hub and args.hub_model_id is None:
        args.hub_model_id = Path(args.output_dir).name
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
        train_dataset = train_dataset.shuffle(seed=args.seed).select(range(min(args.max_train_samples, len(train_dataset))))
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
    output_dir = Path(args.output_dir)
    accelerator = build_accelerator(args, output_dir)
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

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
        train_dataset, eval_dataset = train_dataset.select_columns(columns), eval_dataset.select_columns(columns)
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
    updates_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch
    num_epochs = math.ceil(max_train_steps / updates_per_epoch)
    # The prepared scheduler steps once per process for every update (Accelerate's convention), hence the factor.
    lr_scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=args.num_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)
    if args.with_tracking:
        tracked = {key: value for key, value in vars(args).items() if isinstance(value, (int, float, str, bool))}
        accelerator.init_trackers("train_text_cct", config=tracked)

    completed_steps, starting_epoch, batches_to_skip = resume_position(
        accelerator, args.resume_from_checkpoint, output_dir, updates_per_epoch, args.gradient_accumulation_steps
    )

    accelerator.print(
        f"Training {accelerator.unwrap_model(model).num_parameters(only_trainable=True):,} trainable parameters on "
        f"{len(train_dataset)} texts ({len(label_names)} classes, vocabulary {len(tokenizer)}) for "
        f"{max_train_steps} updates, {accelerator.num_processes} process(es)."
    )
    progress_bar = tqdm(
        total=max_train_steps, initial=completed_steps, disable=not accelerator.is_local_main_process, desc="train"
    )
    train_losses: list[float] = []
    epoch = starting_epoch
    started = time.perf_counter()
    model.train()
    for epoch in range(starting_epoch, num_epochs):
        train_dataloader.set_epoch(epoch)
        batches = train_dataloader
        if epoch == starting_epoch and batches_to_skip:
            batches = accelerator.skip_first_batches(train_dataloader, batches_to_skip)
        accumulated_loss, epoch_loss, epoch_updates = 0.0, 0.0, 0
        for batch in batches:
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
            completed_steps += 1
            train_losses.append(accumulated_loss)
            epoch_loss, epoch_updates = epoch_loss + accumulated_loss, epoch_updates + 1
            accumulated_loss = 0.0
            progress_bar.update(1)
            progress_bar.set_postfix(loss=f"{train_losses[-1]:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
            if args.checkpointing_steps and completed_steps % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, output_dir, completed_steps, args.checkpoints_total_limit, {"epoch": epoch})
            if completed_steps >= max_train_steps:
                break
        if args.with_tracking and epoch_updates:
            accelerator.log(
                {"train_loss": epoch_loss / epoch_updates, "lr": lr_scheduler.get_last_lr()[0], "epoch": epoch},
                step=completed_steps,
            )
        if completed_steps >= max_train_steps:
            break
    progress_bar.close()
    train_seconds = time.perf_counter() - started
    if not args.checkpointing_steps or completed_steps % args.checkpointing_steps != 0:
        save_checkpoint(accelerator, output_dir, completed_steps, args.checkpoints_total_limit, {"epoch": epoch})

    eval_metrics = evaluate_accuracy(model, eval_dataloader, accelerator, len(label_names))
    results = {f"eval_{name}": value for name, value in eval_metrics.items()}
    results.update(
        train_loss=train_losses[-1] if train_losses else None,
        train_steps=completed_steps,
        train_seconds=round(train_seconds, 2),
    )
    accelerator.print(f"Evaluation: {json.dumps(results)}")
    if args.with_tracking:
        accelerator.log(results, step=completed_steps)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(output_dir, save_function=accelerator.save)
        tokenizer.save_pretrained(output_dir)
        (output_dir / "all_results.json").write_text(json.dumps(results, indent=2))
        if args.push_to_hub:
            push_to_hub(output_dir, args.hub_model_id, training_config=vars(args), metrics=results, token=args.hub_token)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return {**results, "train_losses": train_losses}


if __name__ == "__main__":
    main()
