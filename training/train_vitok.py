"""Train a ViTok autoencoder (``AutoencoderViTok``) with Accelerate: stage 1 (whole autoencoder) or stage 2
(decoder only, with a StyleGAN-style discriminator and an EMA of the decoder).

Recipe (ViTok paper §3.4 and appendix A.2):

* stage 1: ``MSE + 1e-3 * KL (mean-reduced) + 1.0 * LPIPS``, optional Charbonnier / SSIM terms;
* stage 2: encoder frozen, ``+ 0.05 * hinge GAN`` ramped in after ``5000 * 256 / batch`` steps over
  ``50000 * 256 / batch`` steps; discriminator AdamW at 2e-5 with linear warm-up; EMA 0.9999 of the decoder;
* AdamW (0.9, 0.95), weight decay 1e-4, LR 1e-4 x batch / 256, cosine with warm-up, bf16, grad clip 1.0.

Run with ``accelerate launch training/train_vitok.py --config training/configs/vitok_s_b16_stage1.yaml`` (or
``torchrun --nproc_per_node N``, or plain ``python``). ``main(argv)`` returns the final evaluation metrics.

``--dataset_name digits`` uses the bundled scikit-learn digits (:func:`hf_compact.data.load_digits_dataset`);
with ``--num_frames > 1``, ``--train_dir`` / ``--validation_dir`` are folders of videos (files or frame folders).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from PIL import Image
from torch import nn
from tqdm.auto import tqdm
from transformers import get_scheduler

from hf_compact.data import (
    ImageReconstructionDataset,
    ImageReconstructionTransform,
    VideoClipDataset,
    load_digits_dataset,
)
from hf_compact.losses import (
    LPIPS,
    StyleGANDiscriminator,
    ViTokLoss,
    ViTokLossWeights,
    adversarial_weight,
    discriminator_hinge_loss,
    generator_hinge_loss,
)
from hf_compact.metrics import (
    FrechetDistance,
    PeakSignalNoiseRatio,
    StructuralSimilarity,
    TorchScriptFeatureExtractor,
)
from hf_compact.training_utils import (
    TrainingRun,
    add_run_arguments,
    build_accelerator,
    check_run_arguments,
    parse_args_with_config,
    prepare_output_dir,
    updates_per_epoch,
)
from hf_compact.training_utils.distributed import ShardedEMAModel, save_pretrained_gathered, sharded_inference
from hf_compact.utils import derive_seed, fold_frames_into_batch
from hf_compact.vitok import AutoencoderViTok

logger = get_logger(__name__)

DIGITS_DATASET = "digits"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--preset", default="S-B/16", help="AutoencoderViTok preset for a fresh stage-1 model.")
    model.add_argument(
        "--model_name_or_path", default=None, help="save_pretrained folder or Hub id (required for stage 2)."
    )
    model.add_argument(
        "--model_overrides",
        type=json.loads,
        default={},
        help="JSON config overrides, e.g. '{\"decoder_depth\": 2}'.",
    )
    model.add_argument("--stage", type=int, choices=(1, 2), default=1)
    model.add_argument("--gradient_checkpointing", action="store_true")
    model.add_argument("--torch_compile", action="store_true", help="torch.compile the training forward pass.")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", default=None, help=f"Hub dataset, or {DIGITS_DATASET!r} (bundled, offline).")
    data.add_argument("--dataset_config_name", default=None)
    data.add_argument(
        "--train_dir", default=None, help="Image folder (imagefolder) or, with --num_frames > 1, videos."
    )
    data.add_argument("--validation_dir", default=None)
    data.add_argument("--image_column", default="image")
    data.add_argument("--resolution", type=int, default=256)
    data.add_argument("--num_frames", type=int, default=1, help="1 for images, T > 1 for video clips.")
    data.add_argument("--frame_stride", type=int, default=1)
    data.add_argument("--max_eval_samples", type=int, default=256)
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument("--cache_dir", default=None)

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
    check_run_arguments(args)

    if args.dataset_name is None and args.train_dir is None:
        raise ValueError("--dataset_name / --train_dir: expected one of them, got neither.")
    if args.num_frames > 1 and args.train_dir is None:
        raise ValueError(f"--train_dir: expected a folder of videos since --num_frames = {args.num_frames}, got None.")
    if args.stage == 2 and args.model_name_or_path is None:
        raise ValueError("--model_name_or_path: stage 2 fine-tunes the decoder of a stage-1 model; got None.")
    if args.lpips_weight > 0 and args.lpips_model_name_or_path is None and not args.lpips_random_init:
        raise ValueError(
            f"--lpips_model_name_or_path: expected LPIPS weights since --lpips_weight = {args.lpips_weight}, got None. "
            "Pass a folder / Hub repo with torchvision's vgg16 and lpips' vgg.pth, set --lpips_weight 0, or pass "
            "--lpips_random_init to train against a random (non-perceptual) network on purpose."
        )
    if not isinstance(args.model_overrides, dict):
        raise TypeError(f"--model_overrides: expected a mapping, got {type(args.model_overrides).__name__}.")
    return args


class AutoencoderTrainingForward(nn.Module):
    """One training forward of the autoencoder, so that DDP / compile / autocast wrap encode *and* decode.

    Stage 1 decodes a posterior sample; with ``freeze_encoder`` (stage 2) the encoder runs without gradients.
    """

    _no_split_modules = AutoencoderViTok._no_split_modules  # FSDP auto-wrap reads it from the prepared module

    def __init__(self, autoencoder: AutoencoderViTok, freeze_encoder: bool):
        super().__init__()
        self.autoencoder = autoencoder
        self.freeze_encoder = freeze_encoder

    def forward(
        self,
        pixel_values: torch.Tensor,
        generator: torch.Generator | None = None,
        sample_posterior: bool = True,
    ):
        """(B, 3, H, W) or (B, 3, T, H, W) pixels -> (reconstruction of the same shape, posterior).

        ``sample_posterior=False`` decodes the posterior mean (the evaluation's reconstruction): evaluating through
        this forward lets FSDP2 gather the parameters outside the blocks, which ``encode`` / ``decode`` would not.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            posterior = self.autoencoder.encode(pixel_values).latent_dist
            latents = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.autoencoder.decode(latents).sample, posterior


def build_autoencoder(args: argparse.Namespace) -> AutoencoderViTok:
    if args.model_name_or_path is not None:
        autoencoder = AutoencoderViTok.from_pretrained(args.model_name_or_path, **args.model_overrides)
    else:
        autoencoder = AutoencoderViTok.from_preset(args.preset, sample_size=args.resolution, **args.model_overrides)
    if args.gradient_checkpointing:
        autoencoder.enable_gradient_checkpointing()
    return autoencoder


def build_datasets(args: argparse.Namespace) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """(train, validation) datasets yielding ``{"pixel_values": ...}`` in [-1, 1]."""
    if args.num_frames > 1:
        train = VideoClipDataset(
            args.train_dir, args.num_frames, args.resolution, args.frame_stride, train=True, seed=args.seed
        )
        validation = VideoClipDataset(
            args.validation_dir or args.train_dir,
            args.num_frames,
            args.resolution,
            args.frame_stride,
            train=False,
        )
    else:
        from datasets import load_dataset

        if args.dataset_name == DIGITS_DATASET:
            splits = load_digits_dataset(image_size=args.resolution)
        elif args.dataset_name is not None:
            splits = load_dataset(args.dataset_name, args.dataset_config_name, cache_dir=args.cache_dir)
        else:
            data_files = {"train": str(Path(args.train_dir) / "**")}
            if args.validation_dir is not None:
                data_files["validation"] = str(Path(args.validation_dir) / "**")
            splits = load_dataset("imagefolder", data_files=data_files, cache_dir=args.cache_dir)
        validation_split = next((name for name in ("validation", "test") if name in splits), None)
        if validation_split is None:
            splits = splits["train"].train_test_split(test_size=0.05, seed=args.seed)
            validation_split = "test"
        train = ImageReconstructionDataset(
            splits["train"],
            ImageReconstructionTransform(args.resolution, train=True),
            args.image_column,
            args.seed,
        )
        validation = ImageReconstructionDataset(
            splits[validation_split],
            ImageReconstructionTransform(args.resolution, train=False),
            args.image_column,
        )
    if args.max_eval_samples is not None and len(validation) > args.max_eval_samples:
        validation = torch.utils.data.Subset(validation, range(args.max_eval_samples))
    return train, validation


def build_lpips(args: argparse.Namespace) -> LPIPS | None:
    if args.lpips_weight <= 0:
        return None
    if args.lpips_model_name_or_path is not None:
        return LPIPS.from_pretrained(
            args.lpips_model_name_or_path,
            backbone_filename=args.lpips_backbone_filename,
            linear_filename=args.lpips_linear_filename,
            cache_dir=args.cache_dir,
        )
    return LPIPS(allow_random_weights=True)


def build_frechet_metrics(args: argparse.Namespace, device: torch.device) -> dict[str, FrechetDistance]:
    """rFID (per frame for videos) and rFVD when their TorchScript feature networks are given.

    Calling conventions are those of StyleGAN3's Inception (``inception-2015-12-05.pt``: pixels in [0, 255],
    ``return_features=True``) and StyleGAN-V's I3D (``i3d_torchscript.pt``: (B, 3, T, H, W) in [0, 255],
    ``rescale=True, resize=True, return_features=True``).
    """
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


def save_reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor, path: Path) -> None:
    """PNG with originals on the top row and reconstructions below (videos: one row pair per clip, frames across)."""

    def to_rows(pixels: torch.Tensor) -> list[torch.Tensor]:
        pixels = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
        if pixels.ndim == 5:  # (B, 3, T, H, W): one row of frames per clip
            return [torch.cat(list(clip.unbind(1)), dim=2) for clip in pixels]
        return [torch.cat(list(pixels), dim=2)]

    rows = []
    for original_row, reconstruction_row in zip(to_rows(originals), to_rows(reconstructions)):
        rows += [original_row, reconstruction_row]
    grid = torch.cat(rows, dim=1).permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(grid)).save(path)


@torch.no_grad()
def evaluate_reconstruction(
    model: AutoencoderTrainingForward,
    dataloader: torch.utils.data.DataLoader,
    accelerator: Accelerator,
    frechet_metrics: dict[str, FrechetDistance],
    grid_path: Path,
    num_grid_samples: int,
    ema: ShardedEMAModel | None = None,
) -> dict[str, float]:
    """PSNR, SSIM (and rFID / rFVD) of posterior-mean reconstructions over ``dataloader``; saves a PNG grid.

    Call it on every process, with the unwrapped prepared module (``accelerator.unwrap_model(training_forward)``):
    the reconstructions go through its forward, so FSDP2 gathers every parameter, and every process reconstructs
    its share of ``dataloader`` (prepared). The main process gathers them, computes the metrics and writes
    ``grid_path`` (``num_grid_samples`` originals over their reconstructions); the others return ``{}``.

    Args:
        ema: the EMA of ``model.autoencoder.decoder`` (stage 2): its weights are evaluated, then the trained
            weights are put back.
    """
    decoder_parameters = list(model.autoencoder.decoder.parameters())
    if ema is not None:
        ema.store(decoder_parameters)
        ema.copy_to(decoder_parameters)
    was_training = model.training
    model.eval()
    metrics = [PeakSignalNoiseRatio(), StructuralSimilarity(), *frechet_metrics.values()]
    grid_samples: tuple[torch.Tensor, torch.Tensor] | None = None
    with sharded_inference(model):
        for batch in dataloader:
            pixels = batch["pixel_values"]
            with accelerator.autocast():
                reconstructions, _ = model(pixels, sample_posterior=False)
            pixels, reconstructions = accelerator.gather_for_metrics((pixels, reconstructions.float()))
            if accelerator.is_main_process:
                for metric in metrics:
                    metric.add_batch(predictions=reconstructions, references=pixels)
                if grid_samples is None:
                    grid_samples = (pixels[:num_grid_samples], reconstructions[:num_grid_samples])
    model.train(was_training)
    if ema is not None:
        ema.restore(decoder_parameters)
    results: dict[str, float] = {}
    if accelerator.is_main_process:
        for metric in metrics:
            results.update(metric.compute())
        save_reconstruction_grid(*grid_samples, grid_path)
    return results


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    accelerator = build_accelerator(args, args.output_dir)
    output_dir = prepare_output_dir(args, accelerator)
    set_seed(args.seed)

    # ---- model, losses, data
    autoencoder = build_autoencoder(args)
    stage_two = args.stage == 2
    if stage_two:
        autoencoder.encoder.requires_grad_(False)
    trainable_module = autoencoder.decoder if stage_two else autoencoder
    training_forward = AutoencoderTrainingForward(autoencoder, freeze_encoder=stage_two)
    if args.torch_compile:
        training_forward = torch.compile(training_forward)
    criterion = ViTokLoss(
        ViTokLossWeights(
            mse=args.mse_weight,
            charbonnier=args.charbonnier_weight,
            ssim=args.ssim_weight,
            kl=0.0 if stage_two else args.kl_weight,  # a frozen encoder gets no gradient from the KL
            lpips=args.lpips_weight,
        ),
        lpips=build_lpips(args),
    ).to(accelerator.device)

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

    # ---- optimizers (schedules come after `prepare`, which fixes the number of batches per process)
    total_batch_size = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    lr_scale = total_batch_size / 256 if args.scale_lr else 1.0
    batch_scale = 256 / total_batch_size
    gan_start_step = args.gan_start_step if args.gan_start_step is not None else round(5000 * batch_scale)
    gan_ramp_steps = args.gan_ramp_steps if args.gan_ramp_steps is not None else round(50000 * batch_scale)
    optimizer = torch.optim.AdamW(
        [parameter for parameter in trainable_module.parameters() if parameter.requires_grad],
        lr=args.learning_rate * lr_scale,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.weight_decay,
    )
    prepared = [training_forward, optimizer, train_dataloader, eval_dataloader]
    discriminator = ema = None
    if stage_two:
        discriminator = StyleGANDiscriminator(
            args.resolution, args.discriminator_base_channels, args.discriminator_max_channels
        )
        discriminator_optimizer = torch.optim.AdamW(
            discriminator.parameters(),
            lr=args.discriminator_learning_rate * lr_scale,
            betas=(args.adam_beta1, args.adam_beta2),
            weight_decay=args.weight_decay,
        )
        prepared += [discriminator, discriminator_optimizer]
    training_forward, optimizer, train_dataloader, eval_dataloader, *gan_parts = accelerator.prepare(*prepared)

    # ---- schedules
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch(
        len(train_dataloader), args.gradient_accumulation_steps
    )
    scheduler_kwargs = {"min_lr_rate": args.min_lr_ratio} if args.lr_scheduler == "cosine_with_min_lr" else None
    lr_scheduler = accelerator.prepare(
        get_scheduler(
            args.lr_scheduler,
            optimizer,
            num_warmup_steps=round(args.lr_warmup_ratio * max_train_steps) * accelerator.num_processes,
            num_training_steps=max_train_steps * accelerator.num_processes,
            scheduler_specific_kwargs=scheduler_kwargs,
        )
    )
    if stage_two:
        discriminator, discriminator_optimizer = gan_parts
        discriminator_warmup = args.discriminator_warmup_steps
        if discriminator_warmup is None:
            discriminator_warmup = round(0.025 * max_train_steps)
        discriminator_scheduler = accelerator.prepare(
            get_scheduler(
                "constant_with_warmup",
                discriminator_optimizer,
                num_warmup_steps=discriminator_warmup * accelerator.num_processes,
            )
        )
    autoencoder = accelerator.unwrap_model(training_forward).autoencoder  # the (possibly moved) module itself
    if stage_two:  # built from the prepared parameters: under FSDP each process averages its own shards
        ema = ShardedEMAModel(autoencoder.decoder.parameters(), decay=args.ema_decay)
    frechet_metrics = build_frechet_metrics(args, accelerator.device)

    run = TrainingRun(
        accelerator,
        args,
        train_dataloader,
        max_train_steps,
        stateful={"ema": ema},
        epoch_datasets=[train_dataset],
    )
    run.init_trackers("train_vitok")
    run.resume()

    accelerator.print(
        f"ViTok stage {args.stage}: {sum(p.numel() for p in autoencoder.parameters()) / 1e6:.2f}M parameters "
        f"({sum(p.numel() for p in trainable_module.parameters() if p.requires_grad) / 1e6:.2f}M trained), "
        f"{len(train_dataset)} training items, total batch {total_batch_size}, {max_train_steps} steps"
    )
    progress = tqdm(
        range(max_train_steps),
        initial=run.completed_steps,
        desc="train_vitok",
        disable=not accelerator.is_local_main_process,
    )

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

    first_losses: dict[str, float] = {}
    last_losses: dict[str, float] = {}
    training_forward.train()
    for batch in run:
        pixels = batch["pixel_values"]
        # Posterior noise from (seed, process, micro-step): identical in a straight and a resumed run.
        noise_generator = torch.Generator().manual_seed(
            derive_seed(args.seed, accelerator.process_index, run.micro_step)
        )
        accumulate = (training_forward, discriminator) if stage_two else (training_forward,)
        with accelerator.accumulate(*accumulate):
            reconstructions, posterior = training_forward(pixels, generator=noise_generator)
            with accelerator.autocast():
                losses = criterion(reconstructions, pixels, posterior)
                loss = losses["loss"]
                gan_weight = 0.0
                if stage_two:
                    gan_weight = adversarial_weight(
                        run.completed_steps, args.gan_weight, gan_start_step, gan_ramp_steps
                    )
                if gan_weight > 0:
                    # The raw module: this pass only routes gradients to the decoder, not to D's DDP reducer.
                    raw_discriminator = accelerator.unwrap_model(discriminator).requires_grad_(False)
                    losses["generator_gan"] = generator_hinge_loss(raw_discriminator(reconstructions))
                    raw_discriminator.requires_grad_(True)
                    loss = loss + gan_weight * losses["generator_gan"]
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm:
                accelerator.clip_grad_norm_(trainable_module.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            if stage_two:
                with accelerator.autocast():
                    logits = discriminator(torch.cat([pixels, reconstructions.detach()]))
                    real_logits, fake_logits = logits.chunk(2)
                    losses["discriminator"] = discriminator_hinge_loss(real_logits, fake_logits)
                accelerator.backward(losses["discriminator"])
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(discriminator.parameters(), args.max_grad_norm)
                discriminator_optimizer.step()
                discriminator_scheduler.step()
                discriminator_optimizer.zero_grad(set_to_none=True)

        if not accelerator.sync_gradients:
            continue
        if ema is not None:
            ema.step(autoencoder.decoder.parameters())
        progress.update(1)
        last_losses = {name: value.detach().item() for name, value in losses.items()}
        first_losses = first_losses or last_losses
        progress.set_postfix(loss=f"{last_losses['loss']:.4f}")
        run.update_done()
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

    results = {
        "step": run.completed_steps,
        "num_parameters": sum(parameter.numel() for parameter in autoencoder.parameters()),
        "num_processes": accelerator.num_processes,
        "train_seconds": run.train_seconds,
        "first_train_loss": first_losses.get("loss"),
        **{f"train_{k}": v for k, v in last_losses.items()},
    }
    results.update(run_evaluation("final"))
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(autoencoder.decoder.parameters())
    # Beside the checkpoints, as the transformers examples do; gathered from every process under FSDP / ZeRO-3.
    save_pretrained_gathered(accelerator, training_forward, output_dir, submodule="autoencoder")
    run.finish(results)
    return results


if __name__ == "__main__":
    main()
