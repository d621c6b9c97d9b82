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
import sys

from hf_compact.data.splits import HELD_OUT_FRACTION
from hf_compact.training_utils import parse_args_with_config
from hf_compact.utils.overrides import replace_file_sources

from run_engine import RESUME_FLAGS, add_run_arguments, check_run_arguments

# The flag that chooses each data source -> its flags and their values when the other source is chosen: a source
# given on the command line replaces the --config file's.
DATA_SOURCES = {
    "dataset_name": {
        "dataset_name": None,
        "dataset_config_name": None,
        "text_column_name": "text",
        "label_column_name": "label",
    },
    "train_file": {"train_file": None, "validation_file": None},
}
# Flags of this recipe that a resume may not change without --allow_changed_flags (besides the engine's).
RECIPE_RESUME_FLAGS = RESUME_FLAGS | {
    "lr_scheduler_type", "text_column_name", "label_column_name", "max_seq_length", "tokenizer_name", "vocab_size",
    "min_frequency", "word_vectors", "freeze_word_vectors",
}  # fmt: skip
# transformers' SchedulerType names (listed here so that the flags are checked before transformers is imported).
SCHEDULER_TYPES = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
    "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay",
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
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
        help='Config values replacing the preset\'s: "conv_kernel_size=1,position_embedding_type=learnable" or a '
        "JSON / YAML mapping.",
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
        "--train_val_split",
        type=float,
        default=HELD_OUT_FRACTION,
        help="Held-out fraction of the training data when the dataset has no evaluation split.",
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
    optimization.add_argument(
        "--lr_scheduler_type", default="cosine", choices=SCHEDULER_TYPES, help="transformers.get_scheduler name."
    )
    optimization.add_argument("--num_warmup_steps", type=int, default=0)
    optimization.add_argument("--num_train_epochs", type=int, default=10)
    optimization.add_argument("--max_grad_norm", type=float, default=None)
    optimization.add_argument("--label_smoothing", type=float, default=0.1)

    add_run_arguments(parser)

    args = parse_args_with_config(parser, argv)
    replace_file_sources(args, sys.argv[1:] if argv is None else argv, DATA_SOURCES)
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


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)  # every flag is checked before the imports below

    import torch
    import torch.nn.functional as F
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import DataCollatorWithPadding, get_scheduler

    from hf_compact.data.loading import quiet_progress_bars
    from hf_compact.hub import save_pretrained_with_code
    from hf_compact.metrics.accuracy import evaluate_accuracy
    from hf_compact.optim import adamw_without_decay_on_1d
    from hf_compact.recipes import text_classification_data, text_classifier
    from hf_compact.training_utils import build_accelerator

    from run_engine import TrainingRun, prepare_output_dir, updates_per_epoch

    accelerator = build_accelerator(args, args.output_dir)
    output_dir = prepare_output_dir(args, accelerator)
    set_seed(args.seed)

    # ---- data, vocabulary and model
    with accelerator.main_process_first():
        train_dataset, eval_dataset, label_names, tokenizer = text_classification_data(args, args, args.seed)
    model = text_classifier(args, label_names, tokenizer, args.max_seq_length)

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

    # ---- optimizer and schedule
    optimizer = adamw_without_decay_on_1d(
        model, args.learning_rate, args.weight_decay, (args.adam_beta1, args.adam_beta2), args.adam_epsilon
    )
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
    run = TrainingRun(accelerator, args, train_dataloader, max_train_steps, resume_flags=RECIPE_RESUME_FLAGS)
    run.init_trackers("train_text_cct")
    run.resume()

    # ---- training
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
        run.update_done(train_losses[-1])
        if args.with_tracking:
            accelerator.log(
                {"train_loss": train_losses[-1], "lr": lr_scheduler.get_last_lr()[0], "epoch": run.epoch},
                step=run.completed_steps,
            )
    progress_bar.close()
    run.save_final_checkpoint()

    # ---- evaluation and the saved model
    eval_metrics = evaluate_accuracy(
        model, eval_dataloader, accelerator, len(label_names), ("input_ids", "attention_mask")
    )
    results = run.build_results(eval_metrics)
    accelerator.print(f"Evaluation: {json.dumps(results)}")
    if args.with_tracking:
        accelerator.log(results, step=run.completed_steps)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with quiet_progress_bars():  # with its modelling code: the folder loads without hf-compact
            save_pretrained_with_code(
                accelerator.unwrap_model(model), output_dir, processor=tokenizer, save_function=accelerator.save
            )
    run.finish(results)
    return {**results, "train_losses": train_losses}


if __name__ == "__main__":
    main()
