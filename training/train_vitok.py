"""Train a ViTok autoencoder (``AutoencoderViTok``) with Accelerate: stage 1 (whole autoencoder) or stage 2
(decoder only, with a StyleGAN-style discriminator and an EMA of the decoder).

Recipe (ViTok paper §3.4 and appendix A.2):

* stage 1: ``MSE + 1e-3 * KL (mean-reduced) + 1.0 * LPIPS``, optional Charbonnier / SSIM terms;
* stage 2: encoder frozen, ``+ 0.05 * hinge GAN`` ramped in after ``5000 * 256 / batch`` steps over
  ``50000 * 256 / batch`` steps; discriminator AdamW at 2e-5 with linear warm-up; EMA 0.9999 of the decoder;
* AdamW (0.9, 0.95), weight decay 1e-4, LR 1e-4 x batch / 256, cosine with warm-up, bf16, grad clip 1.0.

Run with ``accelerate launch training/train_vitok.py --config training/configs/vitok_s_b16_stage1.yaml`` (or
``torchrun --nproc_per_node N``, or plain ``python``). ``main(argv)`` returns the final evaluation metrics.

Data: ``--dataset_name`` (a Hub dataset, or ``digits``: the bundled scikit-learn digits) or ``--train_dir`` /
``--validation_dir``: folders of images (searched recursively, taken literally, every image decoded once before
training) or, with ``--num_frames > 1``, of videos (files or frame folders); for videos, ``--dataset_name
moving_digits`` makes clips of the digits in memory (held-out clips for the evaluation). A source given on the
command line replaces the ``--config`` file's. ``--model_overrides`` takes ``"decoder_depth=2,..."`` or a JSON / YAML
mapping.
"""

from __future__ import annotations

import argparse
import sys

from hf_compact.data.splits import HELD_OUT_FRACTION
from hf_compact.data.streaming import add_streaming_arguments, check_streaming_arguments
from hf_compact.training_utils import parse_args_with_config
from hf_compact.utils.overrides import parse_overrides, replace_file_sources

from run_engine import RESUME_FLAGS, add_run_arguments, check_run_arguments

# The flag that chooses each data source -> its flags and their values when the other source is chosen: a source
# given on the command line replaces the --config file's (an image folder has the column "image").
DATA_SOURCES = {
    "dataset_name": {"dataset_name": None, "dataset_config_name": None, "image_column": "image"},
    "train_dir": {"train_dir": None, "validation_dir": None},
    "data_files": {"data_files": None, "validation_data_files": None},
}
# Flags of this recipe that a resume may not change without --allow_changed_flags (besides the engine's).
RECIPE_RESUME_FLAGS = RESUME_FLAGS | {
    "stage", "image_column", "num_frames", "frame_stride", "digit_size", "mse_weight", "charbonnier_weight",
    "ssim_weight", "kl_weight", "lpips_weight", "gan_weight", "gan_start_step", "gan_ramp_steps",
    "discriminator_learning_rate", "discriminator_warmup_steps", "discriminator_base_channels",
    "discriminator_max_channels", "ema_decay",
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    model = parser.add_argument_group("model")
    model.add_argument("--preset", default="S-B/16", help="AutoencoderViTok preset for a fresh stage-1 model.")
    model.add_argument(
        "--model_name_or_path", default=None, help="save_pretrained folder or Hub id (required for stage 2)."
    )
    model.add_argument(
        "--model_overrides",
        default=None,
        help="Config values replacing the preset's or the saved model's: \"decoder_depth=2,...\" or a JSON / YAML "
        "mapping.",
    )
    model.add_argument("--stage", type=int, choices=(1, 2), default=1)
    model.add_argument("--gradient_checkpointing", action="store_true")
    model.add_argument("--torch_compile", action="store_true", help="torch.compile the training forward pass.")

    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset_name", default=None, help="Hub dataset, or 'digits' / 'moving_digits' (bundled, offline)."
    )
    data.add_argument("--dataset_config_name", default=None)
    data.add_argument(
        "--train_dir", default=None, help="Image folder (imagefolder) or, with --num_frames > 1, videos."
    )
    data.add_argument("--validation_dir", default=None)
    data.add_argument("--image_column", default="image")
    data.add_argument("--resolution", type=int, default=256)
    data.add_argument("--num_frames", type=int, default=1, help="1 for images, T > 1 for video clips.")
    data.add_argument("--frame_stride", type=int, default=1)
    data.add_argument(
        "--digit_size", type=int, default=20, help="Digit side in the clips of --dataset_name moving_digits."
    )
    data.add_argument(
        "--train_val_split",
        type=float,
        default=HELD_OUT_FRACTION,
        help="Held-out fraction of the training images when the dataset has no evaluation split.",
    )
    data.add_argument("--max_eval_samples", type=int, default=256)
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument("--cache_dir", default=None)
    add_streaming_arguments(data)

    loss = parser.add_argument_group("loss")
    loss.add_argument("--mse_weight", type=float, default=1.0)
    loss.add_argument("--charbonnier_weight", type=float, default=0.0)
    loss.add_argument("--ssim_weight", type=float, default=0.0)
    loss.add_argument("--kl_weight", type=float, default=1e-3, help="beta, on the mean-reduced KL.")
    loss.add_argument("--lpips_weight", type=float, default=1.0)
    loss.add_argument("--lpips_model_name_or_path", default=None, help="Folder or Hub repo with vgg16.pth + vgg.pth.")
    loss.add_argument("--lpips_backbone_filename", default="vgg16.pth")
    loss.add_argument("--lpips_linear_filename", default="vgg.pth")
    loss.add_argument(
        "--lpips_random_init",
        action="store_true",
        help="Run LPIPS without pretrained weights (smoke tests only).",
    )
    loss.add_argument("--gan_weight", type=float, default=0.05, help="Stage 2 generator hinge-loss weight.")
    loss.add_argument("--gan_start_step", type=int, default=None, help="Default 5000 * 256 / total batch.")
    loss.add_argument("--gan_ramp_steps", type=int, default=None, help="Default 50000 * 256 / total batch.")
    loss.add_argument("--discriminator_learning_rate", type=float, default=2e-5)
    loss.add_argument("--discriminator_warmup_steps", type=int, default=None, help="Default 2.5%% of the steps.")
    loss.add_argument("--discriminator_base_channels", type=int, default=64)
    loss.add_argument("--discriminator_max_channels", type=int, default=512)
    loss.add_argument("--ema_decay", type=float, default=0.9999, help="Stage 2 EMA of the decoder.")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning_rate", type=float, default=1e-4, help="Peak LR (per 256 samples with --scale_lr).")
    optim.add_argument("--scale_lr", action="store_true", help="Multiply both LRs by total batch / 256 (ViTok).")
    optim.add_argument("--adam_beta1", type=float, default=0.9)
    optim.add_argument("--adam_beta2", type=float, default=0.95)
    optim.add_argument("--weight_decay", type=float, default=1e-4)
    optim.add_argument("--max_grad_norm", type=float, default=1.0)
    optim.add_argument("--lr_scheduler", default="cosine_with_min_lr", help="transformers.get_scheduler name.")
    optim.add_argument("--min_lr_ratio", type=float, default=0.1, help="cosine_with_min_lr floor / peak (1e-5/1e-4).")
    optim.add_argument("--lr_warmup_ratio", type=float, default=0.03)
    optim.add_argument("--per_device_train_batch_size", type=int, default=8)
    optim.add_argument("--per_device_eval_batch_size", type=int, default=8)
    optim.add_argument("--num_train_epochs", type=int, default=1)

    run = add_run_arguments(parser)
    run.add_argument("--eval_steps", type=int, default=None, help="Evaluate every N steps (and always at the end).")
    run.add_argument("--num_grid_samples", type=int, default=8)
    run.add_argument("--fid_feature_extractor", default=None, help="TorchScript Inception: file, folder or Hub id.")
    run.add_argument("--fid_feature_extractor_filename", default="inception-2015-12-05.pt")
    run.add_argument(
        "--fid_feature_extractor_revision", default=None, help="Hub commit (40 hex digits) of the network."
    )
    run.add_argument("--fvd_feature_extractor", default=None, help="TorchScript I3D: file, folder or Hub id.")
    run.add_argument("--fvd_feature_extractor_filename", default="i3d_torchscript.pt")
    run.add_argument(
        "--fvd_feature_extractor_revision", default=None, help="Hub commit (40 hex digits) of the network."
    )
    run.add_argument(
        "--trust_torchscript_code",
        action="store_true",
        help="Allow loading the TorchScript FID / FVD networks: this RUNS THE CODE in those archives; only for files "
        "you trust (Hub sources must be pinned with --*_feature_extractor_revision).",
    )
    args = parse_args_with_config(parser, argv)
    replace_file_sources(args, sys.argv[1:] if argv is None else argv, DATA_SOURCES)
    check_run_arguments(args)
    args.model_overrides = parse_overrides(args.model_overrides, "--model_overrides")

    if args.dataset_name is None and args.train_dir is None and args.data_files is None:
        raise ValueError("--dataset_name / --train_dir / --data_files: expected one of them, got none.")
    check_streaming_arguments(args)
    if args.streaming and args.num_frames > 1:
        raise ValueError(f"--streaming: streams images; got --num_frames {args.num_frames} (videos).")
    if args.num_frames > 1 and args.train_dir is None and args.dataset_name != "moving_digits":
        raise ValueError(
            f"--train_dir: expected a folder of videos (or --dataset_name moving_digits) since --num_frames = "
            f"{args.num_frames}, got neither."
        )
    if args.dataset_name == "moving_digits" and args.num_frames < 2:
        raise ValueError(
            f"--num_frames: --dataset_name moving_digits makes clips, expected >= 2, got {args.num_frames}."
        )
    if args.stage == 2 and args.model_name_or_path is None:
        raise ValueError("--model_name_or_path: stage 2 fine-tunes the decoder of a stage-1 model; got None.")
    if args.lpips_weight > 0 and args.lpips_model_name_or_path is None and not args.lpips_random_init:
        raise ValueError(
            f"--lpips_model_name_or_path: expected LPIPS weights since --lpips_weight = {args.lpips_weight}, got "
            "None. Pass a folder / Hub repo with torchvision's vgg16 and lpips' vgg.pth, set --lpips_weight 0, or "
            "pass --lpips_random_init to train against a random (non-perceptual) network on purpose."
        )
    return args


def build_autoencoder(args: argparse.Namespace):
    """The ``AutoencoderViTok`` to train: ``--model_name_or_path``, else a fresh ``--preset`` at ``--resolution``,
    with ``--model_overrides``; stage 2 freezes its encoder."""
    from hf_compact.utils.overrides import check_override_keys, init_keywords
    from hf_compact.vitok import AutoencoderViTok

    check_override_keys(args.model_overrides, init_keywords(AutoencoderViTok), "--model_overrides")
    if args.model_name_or_path is not None:
        autoencoder = AutoencoderViTok.from_pretrained(args.model_name_or_path, **args.model_overrides)
    else:
        autoencoder = AutoencoderViTok.from_preset(args.preset, sample_size=args.resolution, **args.model_overrides)
    if args.gradient_checkpointing:
        autoencoder.enable_gradient_checkpointing()
    if args.stage == 2:
        autoencoder.encoder.requires_grad_(False)
    return autoencoder


def build_datasets(args: argparse.Namespace):
    """(train, validation) datasets yielding ``{"pixel_values": ...}`` in [-1, 1]: video clips from folders or the
    bundled moving digits, or images from any source of :func:`hf_compact.data.loading.load_image_dataset` split by
    the one split policy."""
    import numpy as np
    import torch

    from hf_compact.data import (
        ImageReconstructionDataset,
        ImageReconstructionTransform,
        VideoArrayDataset,
        VideoClipDataset,
        load_moving_digits_dataset,
    )
    from hf_compact.data.loading import load_image_dataset
    from hf_compact.data.splits import split_for_evaluation

    if args.num_frames > 1:
        clips = (args.num_frames, args.resolution, args.frame_stride)
        if args.dataset_name == "moving_digits":
            videos = load_moving_digits_dataset(args.num_frames, args.resolution, args.digit_size)
            videos = videos.with_format("numpy", columns=["video"], dtype=np.uint8)  # datasets' default: int64
            train = VideoArrayDataset(videos["train"][:]["video"], *clips, train=True, seed=args.seed)
            validation = VideoArrayDataset(videos["test"][:]["video"], *clips, train=False)
        else:
            train = VideoClipDataset(args.train_dir, *clips, train=True, seed=args.seed)
            validation = VideoClipDataset(args.validation_dir or args.train_dir, *clips, train=False)
    else:
        splits = load_image_dataset(
            args.dataset_name,
            args.dataset_config_name,
            args.train_dir,
            args.validation_dir,
            image_size=args.resolution,
            with_labels=False,
            cache_dir=args.cache_dir,
        )
        train_split, validation_split = split_for_evaluation(splits, args.train_val_split, args.seed)
        train = ImageReconstructionDataset(
            train_split, ImageReconstructionTransform(args.resolution, train=True), args.image_column, args.seed
        )
        validation = ImageReconstructionDataset(
            validation_split, ImageReconstructionTransform(args.resolution, train=False), args.image_column
        )
    if args.max_eval_samples is not None and len(validation) > args.max_eval_samples:
        validation = torch.utils.data.Subset(validation, range(args.max_eval_samples))
    return train, validation


def build_streaming_data(args: argparse.Namespace, accelerator):
    """``--streaming``: (the training stream, this process's part of it; the evaluation dataset, in memory)."""
    import torch

    from hf_compact.data import ImageReconstructionDataset, ImageReconstructionTransform
    from hf_compact.data.streaming import (
        StreamingDataLoader,
        load_streaming_dataset,
        load_streaming_evaluation_dataset,
    )

    train_transform = ImageReconstructionTransform(args.resolution, train=True)

    def to_item(example: dict) -> dict:  # crop and flip draw from the global generators, seeded per example
        return {"pixel_values": train_transform(example[args.image_column])}

    stream = load_streaming_dataset(
        args.dataset_name, args.dataset_config_name, args.data_files, cache_dir=args.cache_dir
    )
    train_dataloader = StreamingDataLoader(
        stream, to_item, args.per_device_train_batch_size, rank=accelerator.process_index,
        world_size=accelerator.num_processes, seed=args.seed, shuffle_buffer_size=args.shuffle_buffer_size,
        num_workers=args.dataloader_num_workers, drop_last=True, pin_memory=torch.cuda.is_available(),
    )  # fmt: skip
    validation = load_streaming_evaluation_dataset(
        args.dataset_name, args.dataset_config_name, args.validation_data_files, args.max_eval_samples, args.cache_dir
    )
    eval_transform = ImageReconstructionTransform(args.resolution, train=False)
    return train_dataloader, ImageReconstructionDataset(validation, eval_transform, args.image_column)


def build_criterion(args: argparse.Namespace):
    """ViTok's loss; stage 2 drops the KL term (a frozen encoder gets no gradient from it)."""
    from hf_compact.losses import LPIPS, ViTokLoss, ViTokLossWeights

    lpips = None
    if args.lpips_weight > 0 and args.lpips_model_name_or_path is not None:
        lpips = LPIPS.from_pretrained(
            args.lpips_model_name_or_path,
            backbone_filename=args.lpips_backbone_filename,
            linear_filename=args.lpips_linear_filename,
            cache_dir=args.cache_dir,
        )
    elif args.lpips_weight > 0:
        lpips = LPIPS(allow_random_weights=True)  # --lpips_random_init, checked in parse_args
    weights = ViTokLossWeights(
        mse=args.mse_weight,
        charbonnier=args.charbonnier_weight,
        ssim=args.ssim_weight,
        kl=0.0 if args.stage == 2 else args.kl_weight,
        lpips=args.lpips_weight,
    )
    return ViTokLoss(weights, lpips=lpips)


class AdversarialTraining:
    """Stage 2's GAN: a StyleGAN discriminator with its AdamW and warm-up schedule, and the generator term whose
    weight ramps in (``adversarial_weight``). Build it before ``accelerator.prepare``, then :meth:`prepare`."""

    def __init__(self, args: argparse.Namespace, lr_scale: float, batch_scale: float):
        import torch

        from hf_compact.losses import StyleGANDiscriminator

        self.max_weight = args.gan_weight
        self.start_step = args.gan_start_step if args.gan_start_step is not None else round(5000 * batch_scale)
        self.ramp_steps = args.gan_ramp_steps if args.gan_ramp_steps is not None else round(50000 * batch_scale)
        self.warmup_steps = args.discriminator_warmup_steps
        self.max_grad_norm = args.max_grad_norm
        self.discriminator = StyleGANDiscriminator(
            args.resolution, args.discriminator_base_channels, args.discriminator_max_channels
        )
        self.optimizer = torch.optim.AdamW(
            self.discriminator.parameters(),
            lr=args.discriminator_learning_rate * lr_scale,
            betas=(args.adam_beta1, args.adam_beta2),
            weight_decay=args.weight_decay,
        )

    def prepare(self, accelerator, discriminator, optimizer, max_train_steps: int) -> None:
        """Take the prepared discriminator and optimizer; schedule a warm-up of ``--discriminator_warmup_steps``
        (default 2.5% of the run)."""
        from transformers import get_scheduler

        self.accelerator, self.discriminator, self.optimizer = accelerator, discriminator, optimizer
        warmup_steps = self.warmup_steps if self.warmup_steps is not None else round(0.025 * max_train_steps)
        self.scheduler = accelerator.prepare(
            get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=warmup_steps * accelerator.num_processes)
        )

    def weight(self, step: int) -> float:
        from hf_compact.losses import adversarial_weight

        return adversarial_weight(step, self.max_weight, self.start_step, self.ramp_steps)

    def generator_loss(self, reconstructions):
        """The hinge loss of the generator, through the raw discriminator: this pass only routes gradients to the
        decoder, not to the discriminator's DDP reducer."""
        from hf_compact.losses import generator_hinge_loss

        discriminator = self.accelerator.unwrap_model(self.discriminator).requires_grad_(False)
        loss = generator_hinge_loss(discriminator(reconstructions))
        discriminator.requires_grad_(True)
        return loss

    def update(self, pixels, reconstructions):
        """One discriminator update on real ``pixels`` and detached ``reconstructions``; returns its hinge loss."""
        import torch

        from hf_compact.losses import discriminator_hinge_loss

        with self.accelerator.autocast():
            real_logits, fake_logits = self.discriminator(torch.cat([pixels, reconstructions.detach()])).chunk(2)
            loss = discriminator_hinge_loss(real_logits, fake_logits)
        self.accelerator.backward(loss)
        if self.accelerator.sync_gradients and self.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.discriminator.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


def build_frechet_metrics(args: argparse.Namespace, device) -> dict:
    """rFID (per frame for videos) and rFVD when their TorchScript feature networks are given.

    Calling conventions are those of StyleGAN3's Inception (``inception-2015-12-05.pt``: pixels in [0, 255],
    ``return_features=True``) and StyleGAN-V's I3D (``i3d_torchscript.pt``: (B, 3, T, H, W) in [0, 255],
    ``rescale=True, resize=True, return_features=True``).
    """
    from hf_compact.metrics import FrechetDistance, TorchScriptFeatureExtractor
    from hf_compact.utils import fold_frames_into_batch

    metrics = {}
    if args.fid_feature_extractor is not None:
        inception = TorchScriptFeatureExtractor.from_pretrained(
            args.fid_feature_extractor,
            args.fid_feature_extractor_filename,
            args.cache_dir,
            trust_torchscript_code=args.trust_torchscript_code,
            revision=args.fid_feature_extractor_revision,
            call_kwargs={"return_features": True},
        ).to(device)
        metrics["rfid"] = FrechetDistance(lambda pixels: inception(fold_frames_into_batch(pixels)), name="rfid")
    if args.fvd_feature_extractor is not None and args.num_frames > 1:
        i3d = TorchScriptFeatureExtractor.from_pretrained(
            args.fvd_feature_extractor,
            args.fvd_feature_extractor_filename,
            args.cache_dir,
            trust_torchscript_code=args.trust_torchscript_code,
            revision=args.fvd_feature_extractor_revision,
            call_kwargs={"rescale": True, "resize": True, "return_features": True},
        ).to(device)
        metrics["rfvd"] = FrechetDistance(i3d, name="rfvd")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)  # every flag is checked before the imports below

    import torch
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from hf_compact.hub import save_pretrained_with_code
    from hf_compact.recipes.reconstruction import AutoencoderTrainingForward, evaluate_reconstruction
    from hf_compact.training_utils import build_accelerator
    from hf_compact.training_utils.distributed import ShardedEMAModel, save_pretrained_gathered
    from hf_compact.vitok import AutoencoderViTok

    from run_engine import TrainingRun, prepare_output_dir, updates_per_epoch

    accelerator = build_accelerator(args, args.output_dir)
    output_dir = prepare_output_dir(args, accelerator)
    set_seed(args.seed)
    stage_two = args.stage == 2  # the decoder alone trains, against a discriminator, with an EMA

    # ---- model, loss and data
    autoencoder = build_autoencoder(args)
    trainable_module = autoencoder.decoder if stage_two else autoencoder
    training_forward = AutoencoderTrainingForward(autoencoder, freeze_encoder=stage_two)
    if args.torch_compile:
        training_forward = torch.compile(training_forward)
    criterion = build_criterion(args).to(accelerator.device)
    if args.streaming:  # not a DataLoader: `prepare` leaves it as it is, already split across processes
        train_dataset = None
        train_dataloader, eval_dataset = build_streaming_data(args, accelerator)
    else:
        train_dataset, eval_dataset = build_datasets(args)
        train_dataloader = torch.utils.data.DataLoader(
            train_dataset,
            batch_size=args.per_device_train_batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=args.dataloader_num_workers,
        )
    eval_dataloader = torch.utils.data.DataLoader(
        eval_dataset, batch_size=args.per_device_eval_batch_size, num_workers=args.dataloader_num_workers
    )

    # ---- optimizers (their schedules come after `prepare`, which fixes the number of batches per process)
    total_batch_size = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    lr_scale = total_batch_size / 256 if args.scale_lr else 1.0
    optimizer = torch.optim.AdamW(
        [parameter for parameter in trainable_module.parameters() if parameter.requires_grad],
        lr=args.learning_rate * lr_scale,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.weight_decay,
    )
    adversarial = AdversarialTraining(args, lr_scale, batch_scale=256 / total_batch_size) if stage_two else None
    gan_parts = [adversarial.discriminator, adversarial.optimizer] if stage_two else []
    training_forward, optimizer, train_dataloader, eval_dataloader, *gan_parts = accelerator.prepare(
        training_forward, optimizer, train_dataloader, eval_dataloader, *gan_parts
    )

    # ---- schedules, EMA, metrics and the run
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch(
        len(train_dataloader), args.gradient_accumulation_steps
    )
    # The prepared scheduler steps once per process for every update (Accelerate's convention), hence the factor.
    lr_scheduler = accelerator.prepare(
        get_scheduler(
            args.lr_scheduler,
            optimizer,
            num_warmup_steps=round(args.lr_warmup_ratio * max_train_steps) * accelerator.num_processes,
            num_training_steps=max_train_steps * accelerator.num_processes,
            scheduler_specific_kwargs={"min_lr_rate": args.min_lr_ratio}
            if args.lr_scheduler == "cosine_with_min_lr"
            else None,
        )
    )
    accumulated_modules = [training_forward]
    if stage_two:
        adversarial.prepare(accelerator, *gan_parts, max_train_steps)
        accumulated_modules.append(adversarial.discriminator)  # it accumulates its gradients too
    autoencoder = accelerator.unwrap_model(training_forward).autoencoder  # the (possibly moved) module itself
    # Built from the prepared parameters: under FSDP each process averages its own shards.
    ema = ShardedEMAModel(autoencoder.decoder.parameters(), decay=args.ema_decay) if stage_two else None
    frechet_metrics = build_frechet_metrics(args, accelerator.device)
    run = TrainingRun(
        accelerator,
        args,
        train_dataloader,
        max_train_steps,
        stateful={"ema": ema},
        epoch_datasets=[] if train_dataset is None else [train_dataset],
        resume_flags=RECIPE_RESUME_FLAGS,
    )
    run.init_trackers("train_vitok")
    run.resume()

    def run_evaluation(tag: str) -> dict[str, float]:
        results = evaluate_reconstruction(
            accelerator.unwrap_model(training_forward),
            eval_dataloader,
            accelerator,
            frechet_metrics,
            output_dir / f"reconstructions-{tag}.png",
            args.num_grid_samples,
            ema=ema,
        )
        if results:
            accelerator.print(f"step {run.completed_steps}: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))
        accelerator.log({f"eval/{k}": v for k, v in results.items()}, step=run.completed_steps)
        return results

    # ---- training
    accelerator.print(
        f"ViTok stage {args.stage}: {sum(p.numel() for p in autoencoder.parameters()) / 1e6:.2f}M parameters "
        f"({sum(p.numel() for p in trainable_module.parameters() if p.requires_grad) / 1e6:.2f}M trained), "
        f"{'streamed' if train_dataset is None else len(train_dataset)} training items, total batch "
        f"{total_batch_size}, {max_train_steps} steps"
    )
    progress = tqdm(
        range(max_train_steps),
        initial=run.completed_steps,
        desc="train_vitok",
        disable=not accelerator.is_local_main_process,
    )
    last_losses: dict[str, float] = {}
    training_forward.train()
    for batch in run:
        pixels = batch["pixel_values"]
        with accelerator.accumulate(*accumulated_modules):
            reconstructions, posterior = training_forward(pixels, generator=run.step_generator())
            gan_weight = adversarial.weight(run.completed_steps) if stage_two else 0.0
            with accelerator.autocast():
                losses = criterion(reconstructions, pixels, posterior)
                loss = losses["loss"]
                if gan_weight > 0:
                    losses["generator_gan"] = adversarial.generator_loss(reconstructions)
                    loss = loss + gan_weight * losses["generator_gan"]
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm:
                accelerator.clip_grad_norm_(trainable_module.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if stage_two:
                losses["discriminator"] = adversarial.update(pixels, reconstructions)

        if not accelerator.sync_gradients:
            continue
        if ema is not None:
            ema.step(autoencoder.decoder.parameters())
        progress.update(1)
        last_losses = {name: value.detach().item() for name, value in losses.items()}
        progress.set_postfix(loss=f"{last_losses['loss']:.4f}")
        run.update_done(last_losses["loss"])
        accelerator.log(
            {
                **{f"train/{k}": v for k, v in last_losses.items()},
                "train/lr": lr_scheduler.get_last_lr()[0],
                "train/gan_weight": gan_weight,
            },
            step=run.completed_steps,
        )
        if args.eval_steps and run.completed_steps % args.eval_steps == 0 and not run.finished:
            run_evaluation(f"step{run.completed_steps}")
    progress.close()
    run.save_final_checkpoint()

    # ---- evaluation and the saved model
    eval_metrics = run_evaluation("final")
    results = run.build_results(
        eval_metrics,
        num_parameters=sum(parameter.numel() for parameter in autoencoder.parameters()),
        num_processes=accelerator.num_processes,
        **{f"train_{name}": value for name, value in last_losses.items() if name != "loss"},
    )
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(autoencoder.decoder.parameters())
    # Beside the checkpoints, as the transformers examples do; gathered from every process under FSDP / ZeRO-3.
    save_pretrained_gathered(accelerator, training_forward, output_dir, submodule="autoencoder")
    if accelerator.is_main_process:  # again with its modelling code: the folder loads without hf-compact too
        save_pretrained_with_code(AutoencoderViTok.from_pretrained(output_dir), output_dir)
    run.finish(results)
    return results


if __name__ == "__main__":
    main()
