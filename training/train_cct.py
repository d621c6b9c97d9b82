"""Train a CCT / CVT / ViT-Lite image classifier with Accelerate, following the official CCT recipes.

Recipe parts (Hassani et al. 2021 and the official Compact-Transformers configs; every one is a flag, the YAML
files in ``training/configs/cct_*.yaml`` set the official numbers): AdamW without weight decay on 1-D parameters
(biases, LayerNorm); cosine schedule with linear warmup from ``--warmup_lr``, decay to ``--min_lr`` and
``--cooldown_epochs`` at ``--min_lr``; random-resized crop, horizontal flip, RandAugment (m9, mstd 0.5), random
erasing (kornia, on the batch); Mixup 0.8 / CutMix 1.0 with switch probability 0.5 and label smoothing 0.1 folded
into soft targets; optional EMA of the weights; mixed precision; gradient accumulation; gradient clipping.

Short runs: when ``--max_train_steps`` ends the run before the warmup epochs do, the warmup keeps its share of the
recipe's epochs (with a message), and a run of under 50 epochs is told that the recipe's augmentation may hold it
near chance, with the flags that weaken it.

Data: ``--dataset_name`` (a Hub dataset, or ``digits``: scikit-learn's digits, offline) or ``--train_dir`` (and
``--validation_dir``): folders with one sub-folder of images per class, taken literally and checked before training
(an unreadable image, an empty class folder or a single class refuse the run, naming what is wrong). A source given
on the command line replaces the ``--config`` file's.

Run with ``accelerate launch training/train_cct.py --config training/configs/cct_cifar10_300epochs.yaml`` (or
``torchrun --nproc_per_node N``, or plain ``python``). ``main(argv)`` returns the final evaluation metrics; the
output folder holds the model, its image processor and the class names (``id2label``), loadable with
``pipeline("image-classification", model=...)``.
"""

from __future__ import annotations

import argparse
import json
import sys

from hf_compact.data.splits import HELD_OUT_FRACTION
from hf_compact.data.streaming import add_streaming_arguments, check_streaming_arguments
from hf_compact.training_utils import parse_args_with_config
from hf_compact.utils.overrides import replace_file_sources

from run_engine import RESUME_FLAGS, add_run_arguments, check_run_arguments

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
    "data_files": {"data_files": None, "validation_data_files": None},
}
# Flags of this recipe that a resume may not change without --allow_changed_flags (besides the engine's).
RECIPE_RESUME_FLAGS = RESUME_FLAGS | {
    "image_column_name", "label_column_name", "crop_scale", "no_random_resized_crop", "hflip_prob",
    "randaugment_num_ops", "randaugment_magnitude", "randaugment_magnitude_std", "random_erasing_prob",
    "mixup_alpha", "cutmix_alpha", "mixup_prob", "mixup_switch_prob", "mixup_off_epoch", "use_ema", "ema_decay",
}  # fmt: skip
# A run this short (in epochs) gets a word about the augmentation, which the recipes tune for hundreds of epochs.
SHORT_RUN_EPOCHS = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--preset", type=str, default=None, help="Official variant to train from scratch, e.g. cct_7_3x1_32."
    )
    model.add_argument(
        "--model_name_or_path", type=str, default=None, help="Saved model (folder or Hub id) to fine-tune."
    )
    model.add_argument(
        "--config_overrides",
        type=str,
        default=None,
        help='Config values replacing the preset\'s: "hidden_size=64,num_hidden_layers=1" or a JSON / YAML mapping.',
    )
    model.add_argument(
        "--ignore_mismatched_sizes",
        action="store_true",
        help="With --model_name_or_path: re-initialise the classifier when the number of classes differs.",
    )

    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset_name", type=str, default=None, help="Hub dataset, or 'digits' (scikit-learn, offline)."
    )
    data.add_argument("--dataset_config_name", type=str, default=None)
    data.add_argument("--train_dir", type=str, default=None, help="Image folder (one sub-folder per class).")
    data.add_argument("--validation_dir", type=str, default=None, help="Image folder for the evaluation.")
    data.add_argument(
        "--train_val_split",
        type=float,
        default=HELD_OUT_FRACTION,
        help="Held-out fraction of the training data when the dataset has no evaluation split.",
    )
    data.add_argument("--image_column_name", type=str, default="image")
    data.add_argument("--label_column_name", type=str, default="label")
    data.add_argument("--max_train_samples", type=int, default=None, help="Truncate the training set (quick runs).")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Truncate the evaluation set (quick runs).")
    data.add_argument("--image_size", type=int, default=None, help="Training resolution (default: the model's).")
    data.add_argument(
        "--crop_pct",
        type=float,
        default=1.0,
        help="Evaluation centre crop: resize to size / crop_pct, crop size.",
    )
    data.add_argument(
        "--image_mean",
        type=float,
        nargs=3,
        default=None,
        help="Normalisation mean (default: the processor's).",
    )
    data.add_argument(
        "--image_std", type=float, nargs=3, default=None, help="Normalisation std (default: the processor's)."
    )
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    add_streaming_arguments(data)  # with --streaming, the schedule's epochs are --max_train_steps / --num_train_epochs

    augmentation = parser.add_argument_group("augmentation")
    augmentation.add_argument(
        "--crop_scale", type=float, nargs=2, default=(0.08, 1.0), help="Random-resized-crop area range."
    )
    augmentation.add_argument("--no_random_resized_crop", action="store_true", help="Train on the whole image.")
    augmentation.add_argument("--hflip_prob", type=float, default=0.5)
    augmentation.add_argument("--randaugment_num_ops", type=int, default=2, help="0 switches RandAugment off.")
    augmentation.add_argument("--randaugment_magnitude", type=float, default=9.0, help="timm scale, 0..10.")
    augmentation.add_argument("--randaugment_magnitude_std", type=float, default=0.5)
    augmentation.add_argument("--random_erasing_prob", type=float, default=0.25)
    augmentation.add_argument("--mixup_alpha", type=float, default=0.8)
    augmentation.add_argument("--cutmix_alpha", type=float, default=1.0)
    augmentation.add_argument("--mixup_prob", type=float, default=1.0)
    augmentation.add_argument("--mixup_switch_prob", type=float, default=0.5)
    augmentation.add_argument("--mixup_off_epoch", type=int, default=None, help="Stop mixing from this epoch on.")
    augmentation.add_argument("--label_smoothing", type=float, default=0.1)

    optimization = parser.add_argument_group("optimization")
    optimization.add_argument("--per_device_train_batch_size", type=int, default=128)
    optimization.add_argument("--per_device_eval_batch_size", type=int, default=256)
    optimization.add_argument("--learning_rate", type=float, default=5e-4, help="Peak learning rate.")
    optimization.add_argument("--warmup_lr", type=float, default=1e-6, help="Learning rate of the first update.")
    optimization.add_argument(
        "--min_lr", type=float, default=1e-5, help="End of the cosine and cooldown learning rate."
    )
    optimization.add_argument(
        "--weight_decay", type=float, default=0.05, help="AdamW weight decay (not on 1-D parameters)."
    )
    optimization.add_argument("--adam_beta1", type=float, default=0.9)
    optimization.add_argument("--adam_beta2", type=float, default=0.999)
    optimization.add_argument("--adam_epsilon", type=float, default=1e-8)
    optimization.add_argument("--num_train_epochs", type=int, default=300, help="Epochs of warmup + cosine.")
    optimization.add_argument("--warmup_epochs", type=float, default=10)
    optimization.add_argument(
        "--cooldown_epochs", type=int, default=10, help="Extra epochs at --min_lr after the cosine."
    )
    optimization.add_argument(
        "--max_grad_norm",
        type=float,
        default=None,
        help="Gradient clipping (off by default, as in the recipes).",
    )
    optimization.add_argument(
        "--use_ema", action="store_true", help="Keep an EMA of the weights; evaluate and save it."
    )
    optimization.add_argument("--ema_decay", type=float, default=0.9998)

    add_run_arguments(parser)

    args = parse_args_with_config(parser, argv)
    replace_file_sources(args, sys.argv[1:] if argv is None else argv, DATA_SOURCES)
    check_run_arguments(args)
    if (args.preset is None) == (args.model_name_or_path is None):
        raise ValueError(
            "--preset / --model_name_or_path: expected exactly one of them (train from scratch or fine-tune), got "
            f"{args.preset!r} and {args.model_name_or_path!r}."
        )
    if args.dataset_name is None and args.train_dir is None and args.data_files is None:
        raise ValueError(
            "--dataset_name / --train_dir / --data_files: expected one of them (a Hub dataset or 'digits', an image "
            "folder, or shards to stream), got none."
        )
    check_streaming_arguments(args)
    return args


def load_streaming_classification_data(args: argparse.Namespace):
    """``--streaming``: (the training stream, the evaluation examples in memory, the class names)."""
    from datasets import ClassLabel

    from hf_compact.data.streaming import load_streaming_dataset, load_streaming_evaluation_dataset

    stream = load_streaming_dataset(args.dataset_name, args.dataset_config_name, args.data_files)
    labels = (stream.features or {}).get(args.label_column_name)
    if not isinstance(labels, ClassLabel):
        raise ValueError(
            f"--label_column_name: a streamed dataset needs a ClassLabel column (its class names), got "
            f"{args.label_column_name!r}: {labels!r}."
        )
    evaluation = load_streaming_evaluation_dataset(
        args.dataset_name, args.dataset_config_name, args.validation_data_files, args.max_eval_samples
    )
    return stream, evaluation, labels.names


def make_collate_fn(image_processor, image_column: str, label_column: str, normalize: bool):
    """Batch of dataset rows -> ``{"pixel_values": (batch, 3, H, W) float, "labels": (batch,) long}``; training
    batches stay in [0, 1] (the augmentation normalises them), evaluation batches are normalised."""
    import torch

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        images = [row[image_column] for row in rows]
        pixel_values = image_processor(images, do_normalize=normalize, return_tensors="pt")["pixel_values"]
        labels = torch.tensor([row[label_column] for row in rows], dtype=torch.long)
        return {
            "pixel_values": pixel_values.clamp(0.0, 1.0) if not normalize else pixel_values,
            "labels": labels,
        }

    return collate


def schedule_lengths(args: argparse.Namespace, epoch_updates: int) -> tuple[int, int, int]:
    """``(updates, warmup updates, cooldown updates)`` of the run from the epoch flags (``--max_train_steps`` ends the
    run early, without cooldown). Recipe choice for short runs: a warmup that does not fit the updates of
    ``--max_train_steps`` keeps its share of the recipe's epochs (at least one update), with a message."""
    total_epochs = args.num_train_epochs + args.cooldown_epochs
    warmup_steps = round(args.warmup_epochs * epoch_updates)
    if args.max_train_steps is None:
        if args.warmup_epochs > args.num_train_epochs:
            raise ValueError(
                f"--warmup_epochs: expected at most the --num_train_epochs {args.num_train_epochs}, got "
                f"{args.warmup_epochs}; lower --warmup_epochs or raise --num_train_epochs."
            )
        return total_epochs * epoch_updates, warmup_steps, args.cooldown_epochs * epoch_updates
    max_train_steps = args.max_train_steps
    if warmup_steps > max_train_steps:
        scaled = max(1, round(max_train_steps * args.warmup_epochs / max(total_epochs, args.warmup_epochs)))
        print(
            f"--warmup_epochs {args.warmup_epochs:g} ({warmup_steps} updates of {epoch_updates} per epoch) does not "
            f"fit the {max_train_steps} updates of --max_train_steps: warming up over {scaled} of them instead, the "
            "recipe's share of the run (at least one); pass a smaller --warmup_epochs to choose."
        )
        warmup_steps = scaled
    return max_train_steps, warmup_steps, 0


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)  # every flag is checked before the imports below

    import torch
    import torch.nn.functional as F
    from accelerate.utils import set_seed
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    from hf_compact.data import ClassificationTrainAugmentation, MixupCutmix, smooth_one_hot
    from hf_compact.data.loading import quiet_progress_bars
    from hf_compact.data.streaming import StreamingDataLoader
    from hf_compact.hub import save_pretrained_with_code
    from hf_compact.metrics.accuracy import evaluate_accuracy
    from hf_compact.optim import adamw_without_decay_on_1d
    from hf_compact.recipes import build_image_processor, image_classification_data, image_classifier
    from hf_compact.training_utils import build_accelerator
    from hf_compact.training_utils.schedules import get_cosine_schedule_with_warmup_and_cooldown

    from run_engine import TrainingRun, prepare_output_dir, updates_per_epoch

    accelerator = build_accelerator(args, args.output_dir)
    output_dir = prepare_output_dir(args, accelerator)
    set_seed(args.seed)

    # ---- data and model
    if args.streaming:
        train_dataset, eval_dataset, label_names = load_streaming_classification_data(args)
    else:
        with accelerator.main_process_first():
            train_dataset, eval_dataset, label_names = image_classification_data(args)
    model = image_classifier(args, label_names)
    image_size = model.config.image_size
    image_processor = build_image_processor(
        image_size, args.model_name_or_path, args.crop_pct, args.image_mean, args.image_std
    )
    augment = ClassificationTrainAugmentation(
        image_size,
        image_processor.image_mean,
        image_processor.image_std,
        crop_scale=None if args.no_random_resized_crop else tuple(args.crop_scale),
        hflip_prob=args.hflip_prob,
        randaugment_num_ops=args.randaugment_num_ops,
        randaugment_magnitude=args.randaugment_magnitude,
        randaugment_magnitude_std=args.randaugment_magnitude_std,
        random_erasing_prob=args.random_erasing_prob,
    ).to(accelerator.device)
    mixup = MixupCutmix(
        model.config.num_labels,
        mixup_alpha=args.mixup_alpha,
        cutmix_alpha=args.cutmix_alpha,
        prob=args.mixup_prob,
        switch_prob=args.mixup_switch_prob,
        label_smoothing=args.label_smoothing,
    )

    image_column, label_column = args.image_column_name, args.label_column_name
    train_collate_fn = make_collate_fn(image_processor, image_column, label_column, normalize=False)
    if args.streaming:  # not a DataLoader: `prepare` leaves it as it is, already split across processes
        train_dataloader = StreamingDataLoader(
            train_dataset, None, args.per_device_train_batch_size, rank=accelerator.process_index,
            world_size=accelerator.num_processes, seed=args.seed, shuffle_buffer_size=args.shuffle_buffer_size,
            num_workers=args.dataloader_num_workers, collate_fn=train_collate_fn, drop_last=True,
        )  # fmt: skip
    else:
        train_dataloader = torch.utils.data.DataLoader(
            train_dataset,
            batch_size=args.per_device_train_batch_size,
            shuffle=True,
            drop_last=True,
            collate_fn=train_collate_fn,
            num_workers=args.dataloader_num_workers,
            # Its own generator: starting an epoch must not draw from the global RNG that the augmentations use, or
            # a run resumed mid-epoch would not replay the same augmentations.
            generator=torch.Generator().manual_seed(args.seed),
        )
    eval_dataloader = torch.utils.data.DataLoader(
        eval_dataset,
        batch_size=args.per_device_eval_batch_size,
        collate_fn=make_collate_fn(image_processor, image_column, label_column, normalize=True),
        num_workers=args.dataloader_num_workers,
    )
    if not args.streaming and len(train_dataloader) == 0:
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
    if args.streaming:  # a stream's length is unknown: the schedule counts --max_train_steps as --num_train_epochs
        epoch_updates = max(1, round(args.max_train_steps / args.num_train_epochs))
    else:
        epoch_updates = updates_per_epoch(len(train_dataloader), args.gradient_accumulation_steps)
    max_train_steps, warmup_steps, cooldown_steps = schedule_lengths(args, epoch_updates)
    if max_train_steps < SHORT_RUN_EPOCHS * epoch_updates and (args.mixup_prob > 0 or args.randaugment_num_ops > 0):
        accelerator.print(
            f"A short run ({max_train_steps / epoch_updates:.2g} epochs): the recipe's Mixup / CutMix and RandAugment "
            "are tuned for hundreds of epochs and can hold a short run near chance; for a quick fit weaken them "
            "(--mixup_prob 0 --randaugment_num_ops 0 --crop_scale 0.8 1.0 --random_erasing_prob 0)."
        )
    # The prepared scheduler steps once per process for every update (Accelerate's convention), hence the factor.
    lr_scheduler = get_cosine_schedule_with_warmup_and_cooldown(
        optimizer,
        num_warmup_steps=warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
        num_cooldown_steps=cooldown_steps * accelerator.num_processes,
        warmup_start_lr=args.warmup_lr,
        min_lr=args.min_lr,
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)
    ema = None
    if args.use_ema:
        ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=args.ema_decay)
        ema.to(accelerator.device)
    run = TrainingRun(
        accelerator, args, train_dataloader, max_train_steps, stateful={"ema": ema}, resume_flags=RECIPE_RESUME_FLAGS
    )
    run.init_trackers("train_cct")
    run.resume()

    # ---- training
    accelerator.print(
        f"Training {accelerator.unwrap_model(model).num_parameters():,} parameters on "
        f"{'streamed' if args.streaming else len(train_dataset)} images "
        f"({len(label_names)} classes) for {max_train_steps} updates, {accelerator.num_processes} process(es)."
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
            pixel_values = augment(batch["pixel_values"])
            if args.mixup_off_epoch is None or run.epoch < args.mixup_off_epoch:
                pixel_values, targets = mixup(pixel_values, batch["labels"])
            else:
                targets = smooth_one_hot(batch["labels"], mixup.num_classes, args.label_smoothing)
            logits = model(pixel_values=pixel_values).logits
            loss = F.cross_entropy(logits.float(), targets)
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        accumulated_loss += loss.item() / args.gradient_accumulation_steps
        if not accelerator.sync_gradients:
            continue
        if ema is not None:
            ema.step(accelerator.unwrap_model(model).parameters())
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
    run.save_final_checkpoint()  # before the EMA weights replace the trained ones

    # ---- evaluation and the saved model
    unwrapped = accelerator.unwrap_model(model)
    if ema is not None:
        ema.copy_to(unwrapped.parameters())
    eval_metrics = evaluate_accuracy(model, eval_dataloader, accelerator, len(label_names), ("pixel_values",))
    results = run.build_results(eval_metrics)
    accelerator.print(f"Evaluation: {json.dumps(results)}")
    if args.with_tracking:
        accelerator.log(results, step=run.completed_steps)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with quiet_progress_bars():  # with its modelling code: the folder loads without hf-compact
            save_pretrained_with_code(unwrapped, output_dir, processor=image_processor, save_function=accelerator.save)
    run.finish(results)
    return {**results, "train_losses": train_losses}


if __name__ == "__main__":
    main()
