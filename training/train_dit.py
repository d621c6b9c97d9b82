"""Train a class-conditional DiT on the latents of a trained autoencoder (``AutoencoderViTok``) with Accelerate.

Recipe (DiT, Peebles & Xie 2023; ViTok, Hansen-Estruch et al. 2025):

* the dataset is encoded once and cached (:func:`hf_compact.data.latent_cache.build_latent_cache`, keyed by the
  autoencoder's config + weights and the data); every step draws a fresh posterior sample from the cache;
* ``--objective flow_matching`` (SD3, Esser et al. 2024; SiT, Ma et al. 2024): ``x_t = (1 - sigma) * x_0 + sigma *
  noise``, velocity prediction (``noise - x_0``), timestep ``1000 * sigma``, sigma logit-normal (0, 1) and shifted by
  SD3's resolution rule ``sqrt(latent size / 4096)`` (SiT's unshifted ImageNet-256 latent as the reference; see
  :func:`hf_compact.losses.resolution_shift`; ``--flow_shift`` overrides it); ``c`` output channels; the pipeline
  samples with a flow-matching scheduler (``--sampler``);
* ``--objective ddpm`` (DiT's): DDPM, 1000 steps, linear betas; epsilon prediction with a learned-range variance:
  loss = MSE + VLB (:func:`hf_compact.losses.ddpm_loss`), optionally Min-SNR-gamma weighted (``--snr_gamma``, Hang
  et al. 2023; not in DiT, off by default); the pipeline is saved with DPM-Solver++ on the epsilon half (25 steps
  match DiT's learned-variance DDPM over 250, and diffusers' stock ``DiTPipeline`` can use it);
* label dropout 0.1 (the null class is ``num_classes``) for classifier-free guidance;
* AdamW (0.9, 0.95), grad clip 1.0, EMA of the weights (diffusers' ``EMAModel`` over the prepared, possibly sharded,
  parameters), bf16 on GPU;
* images: diffusers' ``DiTTransformer2DModel(in_channels=c, sample_size=H/p, patch_size=1)``; videos (latents
  ``(c, T/q, H/p, W/p)``, or ``--video``): :class:`hf_compact.DiTTransformer3DModel`.

The output folder is a complete pipeline (``DiTImagePipeline`` or ``DiTVideoPipeline`` with the EMA weights and the
objective's scheduler, which records it) with its modelling code: ``DiTImagePipeline.from_pretrained(output_dir)``
with hf-compact, ``DiffusionPipeline.from_pretrained(output_dir, trust_remote_code=True)`` without it. With
``--sample_steps N``, sample grids (PNG; GIF for videos) are written to ``output_dir/samples`` every N steps and at
the end.

Run with ``accelerate launch training/train_dit.py --config training/configs/dit_xl_vitok_s_b16_imagenet256.yaml`` (or
``torchrun --nproc_per_node N``, or plain ``python``). ``--dataset_name digits`` / ``moving_digits`` use the
bundled scikit-learn digits (images / moving-digit clips). With ``--streaming`` the latent cache is encoded from a
stream (a Hub dataset read with ``streaming=True``, or local webdataset / parquet shards with ``--data_files``)
without downloading or converting the dataset first
(:func:`hf_compact.data.latent_cache.build_latent_cache_from_stream`, keyed by the source's files); training then
reads the cache as usual.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from datasets import Dataset, IterableDataset
from diffusers import (
    DDPMScheduler,
    DiTTransformer2DModel,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.models.embeddings import LabelEmbedding
from PIL import Image, ImageOps
from torch.distributed.tensor import DTensor
from tqdm.auto import tqdm
from transformers import get_scheduler

from hf_compact.data import load_digits_dataset
from hf_compact.data.latent_cache import LatentCacheDataset, build_latent_cache, build_latent_cache_from_stream
from hf_compact.data.moving_digits import load_moving_digits_dataset
from hf_compact.data.streaming import (
    add_streaming_arguments,
    check_streaming_arguments,
    describe_stream_source,
    load_streaming_dataset,
)
from hf_compact.dit import DiTImagePipeline, DiTTransformer3DModel, DiTVideoPipeline
from hf_compact.dit.presets import DIT_PRESETS
from hf_compact.dit.samplers import build_sampler, scheduler_uses_learned_variance
from hf_compact.hub import save_pretrained_with_code
from hf_compact.losses import ddpm_loss, flow_matching_loss, resolution_shift, sample_flow_sigmas
from hf_compact.registry import resolve_class
from hf_compact.training_utils import build_accelerator, parse_args_with_config
from hf_compact.training_utils.distributed import ShardedEMAModel, sharded_inference, unsharded_copy
from hf_compact.utils.overrides import replace_file_sources
from hf_compact.utils.sample_grid import save_sample_grid

from run_engine import TrainingRun, add_run_arguments, check_run_arguments, prepare_output_dir, updates_per_epoch

BUILTIN_DATASETS = ("digits", "moving_digits")
# The flag that chooses each data source -> its flags and their values when another source is chosen: a source given
# on the command line replaces the --config file's (e.g. --streaming --data_files with an ImageNet config).
DATA_SOURCES = {
    "dataset_name": {"dataset_name": None, "dataset_config_name": None},
    "train_dir": {"train_dir": None},
    "data_files": {"data_files": None},
}
OBJECTIVES = ("flow_matching", "ddpm")
FLOW_SAMPLERS = ("euler", "dpmsolver++", "unipc")
# Network evaluations per sample of the saved pipeline (one per step), by objective.
DEFAULT_INFERENCE_STEPS = {"ddpm": 25, "flow_matching": 16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument(
        "--vae_name_or_path", required=True, help="Trained autoencoder (save_pretrained folder / Hub id)."
    )
    model.add_argument("--preset", default="DiT-B", choices=sorted(DIT_PRESETS), help="DiT size.")
    model.add_argument(
        "--model_name_or_path", default=None, help="Start from a saved pipeline's / transformer's weights."
    )
    model.add_argument("--num_layers", type=int, default=None, help="Override the preset.")
    model.add_argument("--num_attention_heads", type=int, default=None, help="Override the preset.")
    model.add_argument("--attention_head_dim", type=int, default=None, help="Override the preset.")
    model.add_argument("--patch_size", type=int, default=1, help="Spatial patch on the latent grid (ViTok: 1).")
    model.add_argument("--temporal_patch_size", type=int, default=1, help="Video DiT patch along latent time.")
    model.add_argument("--video", action="store_true", help="Video DiT (also inferred from 5-D latents).")
    model.add_argument("--gradient_checkpointing", action="store_true")

    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset_name",
        default=None,
        help=f"Hub dataset, a DatasetDict saved with save_to_disk, or one of {BUILTIN_DATASETS} (bundled).",
    )
    data.add_argument("--dataset_config_name", default=None)
    data.add_argument("--train_dir", default=None, help="Image folder (datasets' imagefolder layout).")
    data.add_argument("--image_column", default=None, help="Pixel column (default: 'image', or 'video').")
    data.add_argument("--label_column", default="label")
    data.add_argument("--resolution", type=int, default=None, help="Centre-crop and resize images to this size first.")
    data.add_argument("--num_frames", type=int, default=4, help="Frames per clip of --dataset_name moving_digits.")
    data.add_argument(
        "--digit_size", type=int, default=20, help="Digit side in the clips of --dataset_name moving_digits."
    )
    data.add_argument("--latent_cache_dir", default=None, help="Default: $HF_HOME/hf_compact/latents.")
    data.add_argument("--encode_batch_size", type=int, default=64)
    data.add_argument(
        "--latent_scaling",
        choices=("config", "auto"),
        default="config",
        help="'config': the autoencoder's scaling_factor; 'auto': 1 / std of the cached latents (saved in the "
        "pipeline's autoencoder config).",
    )
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument("--cache_dir", default=None)
    add_streaming_arguments(
        data,
        streaming_help="Encode the latent cache from a stream (--dataset_name from the Hub, or --data_files) "
        "instead of downloading the dataset first; training reads the cache as usual.",
        validation_data_files=False,
        shuffle_buffer_size=False,
    )

    diffusion = parser.add_argument_group("diffusion")
    diffusion.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="flow_matching",
        help="'flow_matching': velocity on a straight path (SD3 / SiT); 'ddpm': DiT's epsilon + learned variance.",
    )
    diffusion.add_argument("--num_train_timesteps", type=int, default=1000)
    diffusion.add_argument("--label_dropout", type=float, default=0.1)
    diffusion.add_argument(
        "--learn_sigma",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ddpm: learn the variance (2c output channels; default on, as DiT). Not for flow_matching.",
    )
    diffusion.add_argument("--ema_decay", type=float, default=0.9999)
    diffusion.add_argument(
        "--snr_gamma",
        type=float,
        default=None,
        help="ddpm: Min-SNR-gamma weighting of the MSE (Hang et al., 2023); e.g. 5.",
    )
    diffusion.add_argument(
        "--flow_shift",
        type=float,
        default=None,
        help="flow_matching: timestep shift, training and sampling (default: max(1, sqrt(latent size / 4096))).",
    )
    diffusion.add_argument("--logit_mean", type=float, default=0.0, help="flow_matching: logit-normal mean (SD3).")
    diffusion.add_argument("--logit_std", type=float, default=1.0, help="flow_matching: logit-normal std (SD3).")
    diffusion.add_argument(
        "--sampler",
        choices=FLOW_SAMPLERS,
        default="unipc",
        help="flow_matching: the saved pipeline's scheduler: UniPC (default), DPM-Solver++ (both with flow sigmas) or "
        "flow Euler; benchmarks/dit_objectives.py measured UniPC at 16 steps as good as any sampler at 25.",
    )

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning_rate", type=float, default=1e-4)
    optim.add_argument("--adam_beta1", type=float, default=0.9)
    optim.add_argument("--adam_beta2", type=float, default=0.95)
    optim.add_argument("--weight_decay", type=float, default=0.0)
    optim.add_argument("--max_grad_norm", type=float, default=1.0)
    optim.add_argument("--lr_scheduler", default="constant", help="transformers.get_scheduler name.")
    optim.add_argument(
        "--min_lr_ratio", type=float, default=0.3, help="cosine_with_min_lr floor / peak (3e-5 / 1e-4)."
    )
    optim.add_argument("--lr_warmup_steps", type=int, default=0)
    optim.add_argument("--per_device_train_batch_size", type=int, default=32)
    optim.add_argument("--num_train_epochs", type=int, default=1)

    run = add_run_arguments(parser)
    run.add_argument(
        "--sample_steps",
        type=int,
        default=None,
        help="Save a sample grid every N steps and one at the end (default: no sample grids).",
    )
    run.add_argument("--samples_per_class", type=int, default=4)
    run.add_argument("--guidance_scale", type=float, default=4.0, help="For the sample grids.")
    run.add_argument(
        "--guidance_interval",
        type=float,
        nargs=2,
        default=(0.0, 1.0),
        metavar=("START", "END"),
        help="For the sample grids: the part of the trajectory (0: noise, 1: clean) where guidance applies.",
    )
    run.add_argument(
        "--num_inference_steps",
        type=int,
        default=None,
        help=f"For the sample grids (default: {DEFAULT_INFERENCE_STEPS}, by objective).",
    )
    args = parse_args_with_config(parser, argv)
    replace_file_sources(args, sys.argv[1:] if argv is None else argv, DATA_SOURCES)
    check_run_arguments(args)

    if args.dataset_name is None and args.train_dir is None and args.data_files is None:
        raise ValueError("--dataset_name / --train_dir / --data_files: expected one of them, got none.")
    check_streaming_arguments(args, needs_max_train_steps=False)  # the latent cache has a length
    if args.streaming and args.dataset_name is not None:
        saved = (Path(args.dataset_name) / "dataset_dict.json").is_file()
        if args.dataset_name in BUILTIN_DATASETS or saved:
            described = "a save_to_disk folder" if saved else "the bundled dataset"
            raise ValueError(
                f"--streaming: expected a Hub dataset or --data_files to stream, got --dataset_name "
                f"{args.dataset_name} ({described}, read whole: run without --streaming)."
            )
    if not 0 <= args.label_dropout < 1:
        raise ValueError(f"--label_dropout: expected a probability in [0, 1), got {args.label_dropout}.")
    if args.mixed_precision is None:
        args.mixed_precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if args.sample_steps is not None and args.sample_steps <= 0:
        raise ValueError(f"--sample_steps: expected a positive number of steps, got {args.sample_steps}.")
    if args.objective == "flow_matching":
        for flag, value in (("--learn_sigma", args.learn_sigma), ("--snr_gamma", args.snr_gamma)):
            if value:
                raise ValueError(f"{flag}: only for --objective ddpm, got {value} with --objective flow_matching.")
        if args.flow_shift is not None and not args.flow_shift > 0:
            raise ValueError(f"--flow_shift: expected a positive number, got {args.flow_shift}.")
        if not args.logit_std > 0:
            raise ValueError(f"--logit_std: expected a positive number, got {args.logit_std}.")
    args.learn_sigma = args.objective == "ddpm" and args.learn_sigma is not False
    if args.num_inference_steps is None:
        args.num_inference_steps = DEFAULT_INFERENCE_STEPS[args.objective]
    return args


# ----------------------------------------------------------------------------------------------------------- data


def load_autoencoder(name_or_path: str) -> torch.nn.Module:
    """Load a saved diffusers autoencoder whose class lives in ``hf_compact`` or ``diffusers``."""
    import diffusers

    class_name = diffusers.AutoModel.load_config(name_or_path).get("_class_name")
    autoencoder_class = resolve_class(class_name, f"--vae_name_or_path ({name_or_path}: _class_name)", diffusers)
    return autoencoder_class.from_pretrained(name_or_path)


def load_training_data(args: argparse.Namespace) -> tuple[Dataset, str]:
    """The training split and its pixel column."""
    from datasets import load_dataset, load_from_disk

    if args.dataset_name == "digits":
        splits = load_digits_dataset(image_size=args.resolution or 32)
    elif args.dataset_name == "moving_digits":
        splits = load_moving_digits_dataset(
            num_frames=args.num_frames, image_size=args.resolution or 32, digit_size=args.digit_size
        )
    elif args.dataset_name is not None and (Path(args.dataset_name) / "dataset_dict.json").is_file():
        splits = load_from_disk(args.dataset_name)
    elif args.dataset_name is not None:
        splits = load_dataset(args.dataset_name, args.dataset_config_name, cache_dir=args.cache_dir)
    else:
        splits = load_dataset("imagefolder", data_dir=args.train_dir, cache_dir=args.cache_dir)
    train = splits["train"]
    pixel_column = training_columns(args, train.column_names)
    if args.resolution is not None and args.dataset_name not in BUILTIN_DATASETS:
        train = train.map(fit_to_resolution(pixel_column, args.resolution), desc="Resizing")
    return train, pixel_column


def load_training_stream(args: argparse.Namespace) -> tuple[IterableDataset, str]:
    """``--streaming``: the training stream (a ``datasets.IterableDataset``, resized lazily) and its pixel column."""
    stream = load_streaming_dataset(
        args.dataset_name, args.dataset_config_name, args.data_files, cache_dir=args.cache_dir
    )
    pixel_column = training_columns(args, stream.column_names)
    if args.resolution is not None:
        stream = stream.map(fit_to_resolution(pixel_column, args.resolution), features=stream.features)
    return stream, pixel_column


def stream_source(args: argparse.Namespace) -> dict:
    """What the latent cache of a stream is keyed by: its files (or Hub revision) and the preprocessing."""
    source = describe_stream_source(
        args.dataset_name, args.dataset_config_name, args.data_files, cache_dir=args.cache_dir
    )
    return {**source, "resolution": args.resolution}


def training_columns(args: argparse.Namespace, column_names: list[str] | None) -> str:
    """The pixel column (``--image_column``, or the first of image/img/video and webdataset's jpg/jpeg/png/webp),
    after checking that it and ``--label_column`` exist (unknown columns, ``None``, are checked while encoding)."""
    if column_names is None:
        return args.image_column or "image"
    candidates = ("image", "img", "video", "jpg", "jpeg", "png", "webp")
    pixel_column = args.image_column or next((c for c in candidates if c in column_names), None)
    if pixel_column not in column_names:
        raise ValueError(f"--image_column: expected one of the columns {column_names}, got {pixel_column!r}.")
    if args.label_column not in column_names:
        raise ValueError(f"--label_column: expected one of the columns {column_names}, got {args.label_column!r}.")
    return pixel_column


def fit_to_resolution(pixel_column: str, resolution: int):
    """Row -> row with its image centre-cropped to a square and resized to ``resolution`` (ViTok's evaluation
    preprocessing), for ``Dataset.map`` and ``IterableDataset.map`` alike."""
    size = (resolution, resolution)

    def fit(row: dict) -> dict:
        return {pixel_column: ImageOps.fit(row[pixel_column].convert("RGB"), size, Image.BICUBIC)}

    return fit


def class_names(cache: LatentCacheDataset) -> list[str]:
    """The dataset's class names (its ``ClassLabel``'s, kept in the cache), else ``"0"``, ``"1"``, ..."""
    names = cache.metadata["class_names"]
    if names is None:
        names = [str(label) for label in range(int(cache.labels.max()) + 1)]
    return list(names)


# ---------------------------------------------------------------------------------------------------------- model


def build_transformer(args: argparse.Namespace, latent_shape: tuple[int, ...], num_classes: int, video: bool):
    """A fresh (or ``--model_name_or_path``) DiT for latents of ``latent_shape`` (``(c, h, w)``/``(c, t, h, w)``)."""
    transformer_class = DiTTransformer3DModel if video else DiTTransformer2DModel
    if args.model_name_or_path is not None:
        subfolder = "transformer" if (Path(args.model_name_or_path) / "transformer").is_dir() else None
        transformer = transformer_class.from_pretrained(args.model_name_or_path, subfolder=subfolder)
        if transformer.config.num_embeds_ada_norm != num_classes:
            raise ValueError(
                f"--model_name_or_path: expected a transformer for {num_classes} classes, got "
                f"num_embeds_ada_norm={transformer.config.num_embeds_ada_norm}."
            )
        return transformer
    size = dict(DIT_PRESETS[args.preset])
    for key in size:
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    channels = latent_shape[0]
    out_channels = 2 * channels if args.learn_sigma else channels
    if video:
        _, frames, height, width = latent_shape
        return DiTTransformer3DModel(
            in_channels=channels,
            out_channels=out_channels,
            sample_size=(height, width),
            sample_frames=frames,
            patch_size=(args.temporal_patch_size, args.patch_size, args.patch_size),
            num_embeds_ada_norm=num_classes,
            **size,
        )
    _, height, width = latent_shape
    if height != width:
        raise ValueError(f"DiTTransformer2DModel needs square latent grids, got {height}x{width}.")
    return DiTTransformer2DModel(
        in_channels=channels,
        out_channels=out_channels,
        sample_size=height,
        patch_size=args.patch_size,
        num_embeds_ada_norm=num_classes,
        norm_num_groups=1,
        **size,
    )


def disable_internal_label_dropout(transformer: torch.nn.Module) -> None:
    """The training loop drops labels itself (one draw per sample). ``DiTTransformer2DModel`` would otherwise
    drop them again, independently in every block, in ``train()`` mode."""
    for module in transformer.modules():
        if isinstance(module, LabelEmbedding):
            module.dropout_prob = 0.0


def build_noise_scheduler(args: argparse.Namespace, latent_shape: tuple[int, ...]):
    """The scheduler the pipeline samples with, which also records the objective.

    * ``ddpm``: DDPM, linear betas, ancestral sampling with the learned variance, as DiT samples;
    * ``flow_matching``: ``FlowMatchEulerDiscreteScheduler(shift=...)`` (``--sampler euler``), or DPM-Solver++ /
      UniPC with ``use_flow_sigmas=True, prediction_type="flow_prediction"`` and the same ``flow_shift``.
    """
    if args.objective == "ddpm":
        return DDPMScheduler(
            num_train_timesteps=args.num_train_timesteps,
            beta_schedule="linear",
            variance_type="learned_range" if args.learn_sigma else "fixed_small",
            clip_sample=False,
        )
    shift = args.flow_shift if args.flow_shift is not None else resolution_shift(latent_shape)
    if args.sampler == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=args.num_train_timesteps, shift=shift)
    solver = {"dpmsolver++": DPMSolverMultistepScheduler, "unipc": UniPCMultistepScheduler}[args.sampler]
    return solver(
        num_train_timesteps=args.num_train_timesteps,
        use_flow_sigmas=True,
        flow_shift=shift,
        prediction_type="flow_prediction",
        solver_order=2,
    )


def flow_shift(noise_scheduler) -> float:
    """The shift of a flow-matching scheduler (``shift`` of flow Euler, ``flow_shift`` of the multistep solvers)."""
    config = noise_scheduler.config
    return config.shift if isinstance(noise_scheduler, FlowMatchEulerDiscreteScheduler) else config.flow_shift


def build_pipeline(transformer, vae, noise_scheduler, names: list[str]):
    """The pipeline that is saved, with a fresh copy of the objective's scheduler; a learned-variance DDPM is saved
    as DPM-Solver++ (``build_sampler("ddpm", "ddpm", pipeline.scheduler.config)`` gives DiT's sampler back)."""
    pipeline_class = DiTVideoPipeline if isinstance(transformer, DiTTransformer3DModel) else DiTImagePipeline
    if scheduler_uses_learned_variance(noise_scheduler):
        scheduler = build_sampler("dpmsolver++", "ddpm", noise_scheduler.config)
    else:
        scheduler = type(noise_scheduler).from_config(noise_scheduler.config)
    return pipeline_class(transformer=transformer, vae=vae, scheduler=scheduler, id2label=dict(enumerate(names)))


def generate_samples(pipeline, num_classes: int, args: argparse.Namespace) -> tuple[np.ndarray, int]:
    """``--samples_per_class`` samples for each of the first 16 classes, class by class.

    Returns:
        ``(samples, rows)``: ``(rows * samples_per_class, H, W, 3)`` images or ``(..., T, H, W, 3)`` videos in
        ``[0, 1]``, and the number of classes sampled (one grid row each).
    """
    rows = min(num_classes, 16)
    labels = [label for label in range(rows) for _ in range(args.samples_per_class)]
    output = pipeline(
        labels,
        guidance_scale=args.guidance_scale,
        guidance_interval=tuple(args.guidance_interval),
        num_inference_steps=args.num_inference_steps,
        generator=torch.Generator(device="cpu").manual_seed(args.seed),
        output_type="np",
    )
    return (output.frames if isinstance(pipeline, DiTVideoPipeline) else output.images), rows


def sample_grid(
    model: torch.nn.Module,
    ema: ShardedEMAModel,
    vae: torch.nn.Module,
    noise_scheduler,
    names: list[str],
    args: argparse.Namespace,
    accelerator: Accelerator,
    path: Path,
) -> np.ndarray:
    """Sample with the EMA weights of ``model`` and save the grid (PNG; GIF for videos) at ``path``.

    Call it on every process, with the unwrapped prepared transformer: under FSDP2 each denoising step all-gathers
    the weights, so every process samples (the same labels and seed, hence the same samples) and the main process
    writes the file. The training weights are put back afterwards.

    Returns:
        The samples, as :func:`generate_samples` returns them.
    """
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    was_training = model.training
    model.eval()
    with sharded_inference(model):
        pipeline = build_pipeline(model, vae.to(accelerator.device), noise_scheduler, names)
        pipeline.set_progress_bar_config(disable=True)
        samples, rows = generate_samples(pipeline, len(names), args)
    vae.cpu()
    model.train(was_training)
    ema.restore(model.parameters())
    if accelerator.is_main_process:
        save_sample_grid(samples, rows, path, row_labels=names[:rows])
    accelerator.wait_for_everyone()
    return samples


def parameter_sum(model: torch.nn.Module) -> torch.Tensor:
    """Sum of all the weights (float64 scalar); under FSDP2 that of the full tensors, so call it on every process."""
    sums = [parameter.detach().double().sum() for parameter in model.parameters()]
    return torch.stack([total.full_tensor() if isinstance(total, DTensor) else total for total in sums]).sum()


# ----------------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    accelerator = build_accelerator(args, args.output_dir)
    output_dir = prepare_output_dir(args, accelerator)
    set_seed(args.seed)

    # ---- latents: encoded once, reused across runs
    vae = load_autoencoder(args.vae_name_or_path).to(accelerator.device).requires_grad_(False)
    latent_cache_dir = args.latent_cache_dir or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hf_compact", "latents"
    )
    encoding = dict(  # every process encodes its share of the rows / of the stream's shards
        batch_size=args.encode_batch_size,
        show_progress=accelerator.is_local_main_process,
        distributed=accelerator.num_processes > 1,
    )
    if args.streaming:
        stream, pixel_column = load_training_stream(args)
        cache = build_latent_cache_from_stream(
            vae, stream, latent_cache_dir, stream_source(args), pixel_column, args.label_column, **encoding
        )
    else:
        dataset, pixel_column = load_training_data(args)
        cache = build_latent_cache(vae, dataset, latent_cache_dir, pixel_column, args.label_column, **encoding)
    vae = vae.cpu()
    names = class_names(cache)
    video = args.video or cache.is_video
    if args.video and not cache.is_video:
        raise ValueError(f"--video: expected 5-D video latents, got latents of shape {cache.latent_shape}.")
    if args.latent_scaling == "auto":
        vae.register_to_config(scaling_factor=1.0 / cache.latent_std())
    scaling_factor = vae.config.scaling_factor
    shift_factor = getattr(vae.config, "shift_factor", None) or 0.0

    transformer = build_transformer(args, cache.latent_shape, len(names), video)
    disable_internal_label_dropout(transformer)
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    noise_scheduler = build_noise_scheduler(args, cache.latent_shape)

    train_dataloader = torch.utils.data.DataLoader(
        cache,
        batch_size=args.per_device_train_batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.dataloader_num_workers,
    )
    if len(train_dataloader) == 0:
        raise ValueError(
            f"--per_device_train_batch_size: expected at most the {len(cache)} training samples, "
            f"got {args.per_device_train_batch_size}."
        )
    optimizer = torch.optim.AdamW(
        transformer.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.weight_decay,
    )
    transformer, optimizer, train_dataloader = accelerator.prepare(transformer, optimizer, train_dataloader)
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch(
        len(train_dataloader), args.gradient_accumulation_steps
    )
    lr_scheduler = accelerator.prepare(
        get_scheduler(
            args.lr_scheduler,
            optimizer,
            num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=max_train_steps * accelerator.num_processes,
            scheduler_specific_kwargs={"min_lr_rate": args.min_lr_ratio}
            if args.lr_scheduler == "cosine_with_min_lr"
            else None,
        )
    )
    model = accelerator.unwrap_model(transformer)
    # Built from the prepared parameters: under FSDP each process averages its own shards.
    ema = ShardedEMAModel(model.parameters(), decay=args.ema_decay, model_cls=type(model), model_config=model.config)
    run = TrainingRun(accelerator, args, train_dataloader, max_train_steps, stateful={"ema": ema})
    run.init_trackers("train_dit")
    run.resume()

    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    shift = flow_shift(noise_scheduler) if args.objective == "flow_matching" else None
    accelerator.print(
        f"{type(model).__name__}: {num_parameters / 1e6:.2f}M parameters, latents {cache.latent_shape}, "
        f"{len(names)} classes, {len(cache)} samples, {max_train_steps} steps, objective {args.objective}"
        + (f" (shift {shift:.3g})" if shift is not None else "")
    )

    progress = tqdm(
        range(max_train_steps),
        initial=run.completed_steps,
        desc="train_dit",
        disable=not accelerator.is_local_main_process,
    )
    loss_history: list[float] = []
    last_losses: dict[str, float] = {}
    transformer.train()
    for batch in run:
        generator = run.step_generator()  # every draw of this batch: a resumed run repeats a straight one
        posterior = cache.latent_distribution(batch["moments"])
        latents = (posterior.sample(generator=generator) - shift_factor) * scaling_factor
        batch_size = latents.shape[0]
        noise = torch.randn(latents.shape, generator=generator, device=latents.device)
        if args.objective == "flow_matching":
            sigmas = sample_flow_sigmas(
                batch_size, shift, args.logit_mean, args.logit_std, generator=generator, device=latents.device
            )
            timesteps = sigmas * args.num_train_timesteps
        else:
            timesteps = torch.randint(
                0, args.num_train_timesteps, (batch_size,), generator=generator, device=latents.device
            )
        dropped = torch.rand(batch_size, generator=generator, device=latents.device) < args.label_dropout
        labels = torch.where(dropped, model.config.num_embeds_ada_norm, batch["label"])
        if args.objective == "flow_matching":
            sigmas = sigmas.reshape(-1, *([1] * (latents.ndim - 1)))
            noisy_latents = (1 - sigmas) * latents + sigmas * noise
        else:
            noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
        with accelerator.accumulate(transformer):
            model_output = transformer(noisy_latents, timestep=timesteps, class_labels=labels).sample
            if args.objective == "flow_matching":
                losses = flow_matching_loss(model_output, latents, noise)
            else:
                losses = ddpm_loss(
                    noise_scheduler,
                    model_output,
                    latents,
                    noise,
                    noisy_latents,
                    timesteps,
                    snr_gamma=args.snr_gamma,
                )
            accelerator.backward(losses["loss"])
            if accelerator.sync_gradients and args.max_grad_norm:
                accelerator.clip_grad_norm_(transformer.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        ema.step(model.parameters())
        progress.update(1)
        last_losses = {name: value.detach().item() for name, value in losses.items()}
        loss_history.append(last_losses["loss"])
        progress.set_postfix(loss=f"{last_losses['loss']:.4f}")
        run.update_done(last_losses["loss"])
        accelerator.log(
            {f"train/{k}": v for k, v in last_losses.items()} | {"train/lr": lr_scheduler.get_last_lr()[0]},
            step=run.completed_steps,
        )
        if args.sample_steps and run.completed_steps % args.sample_steps == 0 and not run.finished:
            grid_path = output_dir / "samples" / f"step-{run.completed_steps}"
            sample_grid(model, ema, vae, noise_scheduler, names, args, accelerator, grid_path)
    progress.close()
    run.save_final_checkpoint()

    # One number per process: equal values show the replicas stayed in sync (checked by the multi-process test).
    parameter_sums = accelerator.gather(parameter_sum(model).reshape(1)).tolist()
    window = max(1, len(loss_history) // 10)
    results = run.build_results(
        num_parameters=num_parameters,
        num_processes=accelerator.num_processes,
        parameter_sums_per_process=parameter_sums,
        latent_cache=str(cache.path),
        latent_scaling_factor=scaling_factor,
        objective=args.objective,
        flow_shift=shift,
        scheduler=type(noise_scheduler).__name__,
        num_inference_steps=args.num_inference_steps,
        # means over the first and the last tenth of this launch's updates (one update's loss depends on its timesteps)
        initial_loss=float(np.mean(loss_history[:window])) if loss_history else None,
        final_loss=float(np.mean(loss_history[-window:])) if loss_history else None,
        **{f"train_{name}": value for name, value in last_losses.items() if name != "loss"},
    )
    if args.sample_steps:
        grid_path = output_dir / "samples" / "final"
        sample_grid(model, ema, vae, noise_scheduler, names, args, accelerator, grid_path)
    accelerator.wait_for_everyone()
    ema.copy_to(model.parameters())
    ema_state_dict = accelerator.get_state_dict(transformer)  # gathered from every process under FSDP / ZeRO-3
    if accelerator.is_main_process:
        pipeline = build_pipeline(unsharded_copy(model, ema_state_dict).eval(), vae, noise_scheduler, names)
        save_pretrained_with_code(pipeline, output_dir)  # beside the checkpoints, as the diffusers examples do
    run.finish(results, push=pipeline if accelerator.is_main_process else None)
    return results


if __name__ == "__main__":
    main()
