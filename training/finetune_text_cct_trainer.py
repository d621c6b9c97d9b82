"""Train or fine-tune a text Compact Transformer with the `transformers` `Trainer` (the `run_classification.py`
way): `TrainingArguments` flags (`--output_dir`, `--learning_rate`, `--num_train_epochs`, `--max_steps`,
`--per_device_train_batch_size`, `--eval_strategy`, `--report_to`, `--push_to_hub`, ...) plus the model and data
flags of `train_text_cct.py`, whose data loading, tokenizer and model building (from `hf_compact.data` and
`hf_compact.recipes`) this script shares.

    python training/finetune_text_cct_trainer.py --preset text_cct_2 --config_overrides conv_kernel_size=1 \
        --dataset_name ag_news --output_dir text-cct-2-agnews --num_train_epochs 5 --eval_strategy epoch

`--config FILE.yaml` reads the same flags from a file. `main(argv)` returns the final evaluation metrics; the output
folder holds the model and its tokenizer, loadable with `pipeline("text-classification", model=...)`.
With `--lora_rank R` only LoRA adapters (`--lora_target_modules`, default the attention projections) and the
classifier train (`hf_compact.lora`), and the folder holds the adapter instead. A fully fine-tuned model is saved with
its modelling code: it loads with `trust_remote_code=True` where hf-compact is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from transformers import DataCollatorWithPadding, EvalPrediction, HfArgumentParser, Trainer, TrainingArguments

from hf_compact.data.loading import quiet_progress_bars
from hf_compact.data.splits import HELD_OUT_FRACTION
from hf_compact.hub import check_repo_id, load_for_push, push_to_hub, save_pretrained_with_code
from hf_compact.lora import LoraArguments, push_lora_adapter
from hf_compact.metrics.accuracy import Accuracy, top_k_for
from hf_compact.recipes import text_classification_data, text_classifier
from hf_compact.training_utils.arguments import namespace_to_dataclasses, parse_args_with_config
from hf_compact.utils.overrides import replace_file_sources

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


@dataclasses.dataclass
class ModelArguments:
    preset: str | None = dataclasses.field(default=None, metadata={"help": "Official builder, e.g. text_cct_2."})
    model_name_or_path: str | None = dataclasses.field(default=None, metadata={"help": "Saved model to fine-tune."})
    config_overrides: str | None = dataclasses.field(
        default=None, metadata={"help": 'Preset values to replace: "conv_kernel_size=1,..." or a JSON / YAML mapping.'}
    )
    ignore_mismatched_sizes: bool = dataclasses.field(
        default=False, metadata={"help": "Re-initialise the classifier."}
    )
    tokenizer_name: str | None = dataclasses.field(default=None, metadata={"help": "Any transformers tokenizer."})
    vocab_size: int = dataclasses.field(default=100000, metadata={"help": "Size of a trained word-level vocabulary."})
    min_frequency: int = dataclasses.field(default=1, metadata={"help": "Rarer words become <unk>."})
    word_vectors: str | None = dataclasses.field(default=None, metadata={"help": "GloVe .txt, .npy or .safetensors."})
    freeze_word_vectors: bool = dataclasses.field(default=False, metadata={"help": "Keep --word_vectors fixed."})


@dataclasses.dataclass
class DataArguments:
    dataset_name: str | None = dataclasses.field(default=None, metadata={"help": "Hub dataset, e.g. ag_news."})
    dataset_config_name: str | None = None
    train_file: str | None = dataclasses.field(default=None, metadata={"help": "CSV or JSON (lines) training file."})
    validation_file: str | None = dataclasses.field(default=None, metadata={"help": "CSV or JSON evaluation file."})
    train_val_split: float = dataclasses.field(
        default=HELD_OUT_FRACTION, metadata={"help": "Held-out fraction when the dataset has no evaluation split."}
    )
    text_column_name: str = "text"
    label_column_name: str = "label"
    max_seq_length: int = dataclasses.field(default=64, metadata={"help": "Words per text (truncated)."})
    max_train_samples: int | None = None
    max_eval_samples: int | None = None


def parse_args(argv: list[str] | None = None) -> tuple:
    """Command line (or ``--config FILE.yaml``) -> model, LoRA, data and ``Trainer`` arguments (dataclasses)."""
    parser = HfArgumentParser((ModelArguments, LoraArguments, DataArguments, TrainingArguments), allow_abbrev=False)
    namespace = parse_args_with_config(parser, argv)
    replace_file_sources(namespace, sys.argv[1:] if argv is None else argv, DATA_SOURCES)
    parsed = namespace_to_dataclasses(parser, namespace)
    model_args, _, data_args, _ = parsed
    if (model_args.preset is None) == (model_args.model_name_or_path is None):
        parser.error("pass exactly one of --preset (train from scratch) and --model_name_or_path (fine-tune).")
    if data_args.dataset_name is None and data_args.train_file is None:
        parser.error("pass --dataset_name (a Hub dataset) or --train_file (a CSV / JSON file).")
    return parsed


def compute_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """`Trainer` `compute_metrics`: top-1 (and top-5 with at least 5 classes) accuracy of the logits."""
    logits = np.asarray(prediction.predictions)
    return Accuracy(keep_in_memory=True).compute(
        predictions=logits, references=prediction.label_ids, top_k=top_k_for(logits.shape[-1])
    )


def main(argv: list[str] | None = None) -> dict:
    model_args, lora_args, data_args, training_args = parse_args(argv)
    with training_args.main_process_first(desc="dataset and tokenizer"):
        train_dataset, eval_dataset, label_names, tokenizer = text_classification_data(
            data_args, model_args, training_args.seed
        )
    model = text_classifier(model_args, label_names, tokenizer, data_args.max_seq_length)
    model = lora_args.apply(model, training_args)  # LoRA adapters with --lora_rank, else the model itself

    # Trainer's own Hub sync is off: the model card and the upload go through hf_compact.hub at the end.
    push_at_end, training_args.push_to_hub = training_args.push_to_hub, False
    repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
    if push_at_end:
        check_repo_id(repo_id, "--hub_model_id")
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_accuracy,
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics = {**train_result.metrics, **trainer.evaluate()}
    with quiet_progress_bars():  # a bar for writing one small file says nothing
        trainer.save_model()  # with LoRA, the adapter (and the classifier)
        if lora_args.lora_rank is None and trainer.is_world_process_zero():
            # The saved (gathered) weights again, with their modelling code: the folder loads without hf-compact.
            saved_model, _ = load_for_push(training_args.output_dir)
            save_pretrained_with_code(saved_model, training_args.output_dir, processor=tokenizer)
    if trainer.is_world_process_zero():
        (Path(training_args.output_dir) / "all_results.json").write_text(json.dumps(metrics, indent=2))
    if push_at_end and trainer.is_world_process_zero() and lora_args.lora_rank is not None:
        push_lora_adapter(
            trainer.model,
            repo_id,
            base_model=model_args.model_name_or_path,
            processor=tokenizer,
            metrics=metrics,
            token=training_args.hub_token,
        )
    elif push_at_end and trainer.is_world_process_zero():
        push_to_hub(
            training_args.output_dir,
            repo_id,
            training_config={**vars(model_args), **vars(data_args), **training_args.to_dict()},
            metrics=metrics,
            token=training_args.hub_token,
        )
    return metrics


if __name__ == "__main__":
    main()
