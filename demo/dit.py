"""Demo part 3: class-conditional generation on the demo ViTok's latents (CPU, no downloads, fixed step budget).

A small DiT (``DiTTransformer2DModel``, patch 2 on the 8x8 latent grid) is trained for a fixed number of steps on
the latents of the demo's ViTok with ``training/train_dit.py`` (its command line), with the flow-matching objective
(velocity prediction, logit-normal timesteps; see the script). ``DiTImagePipeline`` samples with the scheduler the
script saved, over a small guidance sweep, and the demo's CCT judges the samples (:class:`demo.judge.DigitJudge`:
class agreement, Frechet CCT distance to held-out digits next to the distance between two real halves,
within-class spread). The guidance used for the grid is the one with the smallest Frechet CCT distance among those
keeping agreement >= 0.95. ``benchmarks/dit_objectives.py`` compares the objectives and the samplers.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from hf_compact import DiTImagePipeline
from hf_compact.utils.sample_grid import save_sample_grid

from .judge import DIGIT_NAMES, NUM_CLASSES, DigitJudge
from .recipes import run_recipe

DIT_MODEL = ["--preset", "DiT-S", "--num_layers", "4", "--num_attention_heads", "4", "--attention_head_dim", "32",
             "--patch_size", "2"]  # fmt: skip
AGREEMENT_FLOOR = 0.95
IMAGE_DIT_STEPS = 400
# Learning rate by objective (benchmarks/dit_objectives.py): flow matching takes a 2.5x higher peak, a short warmup and
# a cosine decay to 0.3 of the peak over the run; DiT's objective as the demo trained it before, with Min-SNR-5.
OPTIMISATION = {
    "flow_matching": ["--learning_rate", "5e-3", "--lr_warmup_steps", "25", "--lr_scheduler", "cosine_with_min_lr"],
    "ddpm": ["--learning_rate", "2e-3", "--lr_warmup_steps", "100", "--lr_scheduler", "constant_with_warmup",
             "--snr_gamma", "5"],
}  # fmt: skip


def dit_recipe(latent_cache_dir: Path, objective: str = "flow_matching") -> list[str]:
    """``train_dit.py`` flags shared by the image and the video DiT of the demo (all but data and steps)."""
    return [
        *DIT_MODEL, "--objective", objective, *OPTIMISATION[objective],
        "--per_device_train_batch_size", "32", "--ema_decay", "0.999", "--latent_scaling", "auto",
        "--latent_cache_dir", str(latent_cache_dir), "--mixed_precision", "no", "--seed", "0",
    ]  # fmt: skip


def image_dit_flags(output_dir: Path, vitok_path: Path, steps: int, objective: str = "flow_matching") -> list[str]:
    """The whole ``train_dit.py`` command line of the demo's image DiT."""
    return [
        "--vae_name_or_path", str(vitok_path), "--dataset_name", "digits", "--output_dir", str(output_dir / "dit"),
        "--max_train_steps", str(steps), *dit_recipe(output_dir / "latent_cache", objective),
    ]  # fmt: skip


def sample(pipeline, labels: list[int], guidance_scale: float, num_inference_steps: int, batch_size: int = 100):
    """``"pt"`` samples in [0, 1] for ``labels`` (fixed seed), in batches."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for start in range(0, len(labels), batch_size):
        output = pipeline(
            labels[start : start + batch_size],
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            generator=generator,
            output_type="pt",
        )
        batches.append(output.frames if hasattr(output, "frames") else output.images)
    return torch.cat(batches)


def guidance_sweep(
    pipeline, judge: DigitJudge, samples_per_class: int, guidance_scales, num_inference_steps: int
) -> tuple[dict[str, dict], dict[float, torch.Tensor]]:
    """Judge ``samples_per_class`` samples per digit at every guidance scale; returns the figures and samples."""
    labels = [digit for digit in range(NUM_CLASSES) for _ in range(samples_per_class)]
    sweep, samples_by_scale = {}, {}
    for scale in guidance_scales:
        samples_by_scale[scale] = sample(pipeline, labels, scale, num_inference_steps)
        sweep[str(scale)] = judge(samples_by_scale[scale], torch.tensor(labels))
    return sweep, samples_by_scale


def choose_guidance(sweep: dict[str, dict]) -> tuple[float, str]:
    eligible = {scale: row for scale, row in sweep.items() if row["class_agreement"] >= AGREEMENT_FLOOR}
    if not eligible:
        best = max(sweep, key=lambda scale: sweep[scale]["class_agreement"])
        return float(best), f"no scale reached agreement {AGREEMENT_FLOOR}; {best} has the highest agreement"
    best = min(eligible, key=lambda scale: eligible[scale]["frechet_cct_distance"])
    return float(best), (
        f"smallest Frechet CCT distance ({eligible[best]['frechet_cct_distance']}) among the scales with agreement "
        f">= {AGREEMENT_FLOOR}"
    )


def run(
    output_dir: Path,
    vitok_path: Path,
    classifier_path: Path,
    dit_steps: int = IMAGE_DIT_STEPS,
    samples_per_class: int = 18,
    guidance_scales: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0),
) -> dict:
    """Train the image DiT and judge its samples; returns the numbers for ``results.json``.

    Args:
        output_dir: demo folder (this part writes ``dit/``, ``latent_cache/`` and ``dit_samples.png`` there).
        vitok_path: the demo's image ViTok (``save_pretrained`` folder, trained on the 32 px digits).
        classifier_path: the demo's CCT (``CCTForImageClassification`` folder with its image processor).
        dit_steps: image DiT training steps.
        samples_per_class: generated images per digit for every measurement.
        guidance_scales: the guidance sweep.
    """
    output_dir = Path(output_dir)
    judge = DigitJudge(classifier_path)
    training = run_recipe(
        "train_dit.py", [*image_dit_flags(output_dir, vitok_path, dit_steps), "--overwrite_output_dir"]
    )
    pipeline = DiTImagePipeline.from_pretrained(output_dir / "dit")
    pipeline.set_progress_bar_config(disable=True)
    num_inference_steps = training["num_inference_steps"]
    started = time.perf_counter()
    sweep, samples_by_scale = guidance_sweep(pipeline, judge, samples_per_class, guidance_scales, num_inference_steps)
    sampling_seconds = round(time.perf_counter() - started, 1)
    for scale, row in sweep.items():
        print(f"[dit] {type(pipeline.scheduler).__name__} {num_inference_steps} steps, guidance {scale}: {row}")
    guidance, reason = choose_guidance(sweep)
    chosen = sweep[str(guidance)]
    shown = samples_by_scale[guidance]
    grid_samples = shown.reshape(NUM_CLASSES, samples_per_class, *shown.shape[1:])[:, :10].flatten(0, 1)
    image_grid = save_sample_grid(
        grid_samples.permute(0, 2, 3, 1).numpy(), NUM_CLASSES, output_dir / "dit_samples", row_labels=DIGIT_NAMES
    )
    return {
        "real_halves_frechet_cct_distance": round(judge.real_halves_distance(), 2),
        "dit_objective": training["objective"],
        "dit_parameters": training["num_parameters"],
        "dit_train_steps": training["train_steps"],
        "dit_train_seconds": round(training["train_seconds"], 1),
        "dit_first_train_loss": round(training["first_train_loss"], 4),
        "dit_final_train_loss": round(training["train_loss"], 4),
        "dit_sampler": f"{type(pipeline.scheduler).__name__} {num_inference_steps} steps",
        "dit_sampling_seconds": sampling_seconds,
        "dit_guidance_scale": guidance,
        "dit_guidance_reason": reason,
        "dit_class_agreement": chosen["class_agreement"],
        "dit_frechet_cct_distance": chosen["frechet_cct_distance"],
        "dit_within_class_spread": chosen["within_class_spread"],
        "dit_guidance_sweep": sweep,
        "dit_samples_per_class": samples_per_class,
        "dit_sample_grid": str(image_grid),
    }
