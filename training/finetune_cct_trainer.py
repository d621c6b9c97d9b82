"""Fine-tune a CCT / CVT / ViT-Lite classifier (a preset, a saved or converted checkpoint) with `transformers.Trainer`.

The data loading, model building and image processor are those of ``train_cct.py`` (from ``hf_compact.data`` and
``hf_compact.recipes``); the training loop is ``Trainer``'s (all ``TrainingArguments`` flags work:
``--learning_rate``, ``--num_train_epochs``, ``--label_smoothing_factor``, ``--eval_strategy``, ``--push_to_hub``...).
Images are decoded and augmented on the fly: the training split gets the batched kornia recipe of
[`ClassificationTrainAugmentation`] (random-resized crop, flip, RandAugment, random erasing), the evaluation split
the image processor only. For Mixup/CutMix, EMA and the official cosine-with-cooldown schedule use ``train_cct.py``.

Example (fine-tune the ImageNet CCT on an image folder with new classes)::

    python training/finetune_cct_trainer.py --model_name_or_path outputs/cct_14_7x2_224_imagenet \\
        --ignore_mismatched_sizes --train_dir flowers/train --validation_dir flowers/val \\
        --output_dir outputs/cct_flowers --num_train_epochs 10 --learning_rate 5e-5 --eval_strategy epoch

With ``--lora_rank R`` only LoRA adapters on the attention projections (``--lora_target_modules``) and the
classifier train (``hf_compact.lora``), and ``--output_dir`` holds the adapter (``adapter_config.json``,
``adapter_model.safetensors``); otherwise it holds the model with its modelling code, which loads with
``trust_remote_code=True`` where hf-compact is not installed.

``main(argv)`` returns the final training and evaluation metrics.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, Trainer, TrainingArguments

from hf_compact.data import ClassificationTrainAugmentation
from hf_compact.data.loading import quiet_progress_bars
from hf_compact.data.splits import HELD_OUT_FRACTION
from hf_compact.hub import check_repo_id, load_for_push, push_to_hub, save_pretrained_with_code
from hf_compact.lora import LoraArguments, push_lora_adapter
from hf_compact.metrics.accuracy import Accuracy, top_k_for
from hf_compact.recipes import build_image_processor, image_classification_data, image_classifier
from hf_compact.training_utils.arguments import namespace_to_dataclasses, parse_args_with_config
from hf_compact.utils.overrides import replace_file_sources

# The flag that chooses each data source -> its flags and their values when the other source is chosen: a source
# given on the command line replaces the --config file's (an image folder has the columns "image" and "label").
DATA_SOURCES = {
    "dataset_name": {
        "dataset_name": None,
        "dataset_config_name": None,
        "image_column_name": "image",
        "label_column_name": "label",
    },
    "train_dir": {"train_dir": None, "validation_dir": None},
}


@dataclass
class ModelArguments:
    preset: str | None = field(default=None, metadata={"help": "Official variant to start from, e.g. cct_7_3x1_32."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Saved model (folder or Hub id)."})
    config_overrides: str | None = field(
        default=None, metadata={"help": 'With --preset: "hidden_size=64,..." or a JSON / YAML mapping.'}
    )
    ignore_mismatched_sizes: bool = field(default=False, metadata={"help": "New classifier for a new class count."})


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset, or 'digits' (offline)."})
    dataset_config_name: str | None = None
    train_dir: str | None = field(default=None, metadata={"help": "Image folder (one sub-folder per class)."})
    validation_dir: str | None = None
    train_val_split: float = field(
        default=HELD_OUT_FRACTION, metadata={"help": "Held-out fraction when the dataset has no evaluation split."}
    )
    image_column_name: str = "image"
    label_column_name: str = "label"
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    image_size: int | None = field(default=None, metadata={"help": "Resolution (default: the model's)."})
    crop_pct: float = 1.0
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    hflip_prob: float = 0.5
    randaugment_num_ops: int = 2
    randaugment_magnitude: float = 9.0
    randaugment_magnitude_std: float = 0.5
    random_erasing_prob: float = 0.25


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, TrainingArguments]:
    """Command line (or ``--config FILE.yaml``) -> the model and data options, and ``TrainingArguments``."""
    parser = HfArgumentParser((ModelArguments, LoraArguments, DataArguments, TrainingArguments), allow_abbrev=False)
    namespace = parse_args_with_config(parser, argv)
    replace_file_sources(namespace, sys.argv[1:] if argv is None else argv, DATA_SOURCES)
    model_args, lora_args, data_args, training_args = namespace_to_dataclasses(parser, namespace)
    if (model_args.preset is None) == (model_args.model_name_or_path is None):
        parser.error("pass exactly one of --preset and --model_name_or_path.")
    if data_args.dataset_name is None and data_args.train_dir is None:
        parser.error("pass --dataset_name (a Hub dataset or 'digits') or --train_dir (an image folder).")
    # The images are transformed on the fly, so the raw columns must reach the transforms (ecosystem pitfall).
    training_args.remove_unused_columns = False
    options = argparse.Namespace(**vars(model_args), **vars(data_args), seed=training_args.seed, lora=lora_args)
    return options, training_args


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([row["pixel_values"] for row in rows]),
        "labels": torch.tensor([row["labels"] for row in rows], dtype=torch.long),
    }


def main(argv: list[str] | None = None) -> dict:
    options, training_args = parse_args(argv)
    with training_args.main_process_first(desc="load the dataset"):
        train_dataset, eval_dataset, label_names = image_classification_data(options)
    model = image_classifier(options, label_names)
    model = options.lora.apply(model, training_args)  # LoRA adapters with --lora_rank, else the model itself
    image_processor = build_image_processor(
        model.config.image_size, options.model_name_or_path, options.crop_pct, options.image_mean, options.image_std
    )
    augment = ClassificationTrainAugmentation(
        model.config.image_size,
        image_processor.image_mean,
        image_processor.image_std,
        crop_scale=tuple(options.crop_scale),
        hflip_prob=options.hflip_prob,
        randaugment_num_ops=options.randaugment_num_ops,
        randaugment_magnitude=options.randaugment_magnitude,
        randaugment_magnitude_std=options.randaugment_magnitude_std,
        random_erasing_prob=options.random_erasing_prob,
    )
    image_column, label_column = options.image_column_name, options.label_column_name

    # `datasets` hands a whole batch of rows to these transforms, so the augmentation runs batched.
    def train_transform(examples: dict) -> dict:
        pixels = image_processor(examples[image_column], do_normalize=False, return_tensors="pt")["pixel_values"]
        return {"pixel_values": augment(pixels.clamp(0.0, 1.0)), "labels": examples[label_column]}

    def eval_transform(examples: dict) -> dict:
        pixels = image_processor(examples[image_column], return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "labels": examples[label_column]}

    train_dataset.set_transform(train_transform)
    eval_dataset.set_transform(eval_transform)
    top_k = top_k_for(len(label_names))

    def compute_metrics(evaluation) -> dict[str, float]:
        return Accuracy(keep_in_memory=True).compute(
            predictions=evaluation.predictions, references=evaluation.label_ids, top_k=top_k
        )

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
        data_collator=collate,
        compute_metrics=compute_metrics,
        processing_class=image_processor,
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    with quiet_progress_bars():  # a bar for writing one small file says nothing
        trainer.save_model()  # with LoRA, the adapter (and the classifier)
        if options.lora.lora_rank is None and trainer.is_world_process_zero():
            # The saved (gathered) weights again, with their modelling code: the folder loads without hf-compact.
            saved_model, _ = load_for_push(training_args.output_dir)
            save_pretrained_with_code(saved_model, training_args.output_dir, processor=image_processor)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    if push_at_end and trainer.is_world_process_zero() and options.lora.lora_rank is not None:
        push_lora_adapter(
            trainer.model,
            repo_id,
            base_model=options.model_name_or_path,
            processor=image_processor,
            metrics={**train_result.metrics, **eval_metrics},
            token=training_args.hub_token,
        )
    elif push_at_end and trainer.is_world_process_zero():
        push_to_hub(
            training_args.output_dir,
            repo_id,
            training_config={**vars(options), **training_args.to_dict()},
            metrics={**train_result.metrics, **eval_metrics},
            token=training_args.hub_token,
        )
    return {**train_result.metrics, **eval_metrics}


if __name__ == "__main__":
    main()
