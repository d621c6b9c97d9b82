"""Demo part 3: class-conditional generation on the demo ViTok's latents (CPU, no downloads, fixed step budget).

A small DiT (``DiTTransformer2DModel``, patch 2 on the 8x8 latent grid) is trained for a fixed number of steps on
the latents of the demo's ViTok (``train_dit.py``), with Min-SNR-5 loss weighting (``--snr_gamma``: the nearly
clean steps weigh less). ``DiTImagePipeline`` samples with DPM-Solver++
(:func:`hf_compact.dit.samplers.fast_scheduler`, 25 steps) over a small guidance sweep, and once with DiT's
learned-variance DDPM over 250 steps (the reference). The demo's CCT judges the samples (``demo_judge``: class
agreement, Frechet CCT distance to held-out digits next to the distance between two real halves, within-class
spread). The guidance used for the grid is the one with the smallest Frechet CCT distance among those keeping
agreement >= 0.95.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import train_dit  # noqa: E402
from demo_judge import (  # noqa: E402
    NUM_CLASSES,
    DigitJudge,
    class_agreement,
    frechet,
    real_digit_features,
    within_class_spread,
)
from diffusers import DiffusionPipeline  # noqa: E402

import hf_compact  # noqa: E402,F401  (registers the pipelines with diffusers)
from hf_compact.dit.sample_grid import save_sample_grid  # noqa: E402
from hf_compact.dit.samplers import fast_scheduler  # noqa: E402

DIT_MODEL = ["--preset", "DiT-S", "--num_layers", "4", "--num_attention_heads", "4", "--attention_head_dim", "32",
             "--patch_size", "2"]  # fmt: skip
AGREEMENT_FLOOR = 0.95


def dit_recipe(latent_cache_dir: Path) -> list[str]:
    """``train_dit.py`` flags shared by the image and the video DiT of the demo (all but data and steps)."""
    return [
        *DIT_MODEL, "--snr_gamma", "5", "--learning_rate", "2e-3", "--lr_warmup_steps", "100",
        "--lr_scheduler", "constant_with_warmup",
        "--per_device_train_batch_size", "32", "--ema_decay", "0.999", "--latent_scaling", "auto",
        "--latent_cache_dir", str(latent_cache_dir), "--mixed_precision", "no", "--seed", "0", "--overwrite_output_dir",
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


def judge_images(judge, images: torch.Tensor, labels: torch.Tensor, real, real_labels, real_half) -> dict:
    predicted, features = judge(images)
    return {
        "class_agreement": class_agreement(predicted, labels),
        "frechet_cct_distance": round(frechet(features, real_half), 2),
        "within_class_spread": round(within_class_spread(features, labels, real, real_labels), 3),
    }


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


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - started, 1)


def run(
    output_dir: Path,
    vitok_path: Path,
    classifier_path: Path,
    dit_steps: int = 1000,
    samples_per_class: int = 18,
    guidance_scales: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0),
    fast_steps: int = 25,
    reference_steps: int = 250,
) -> dict:
    """Train the image DiT and judge its samples; returns the numbers for ``results.json``.

    Args:
        output_dir: demo folder (this part writes ``dit/``, ``latent_cache/`` and ``dit_samples.png`` there).
        vitok_path: the demo's image ViTok (``save_pretrained`` folder, trained on the 32 px digits).
        classifier_path: the demo's CCT (``CCTForImageClassification`` folder with its image processor).
        dit_steps: image DiT training steps.
        samples_per_class: generated images per digit for every measurement.
        guidance_scales: the sweep of the fast sampler.
        fast_steps / reference_steps: DPM-Solver++ steps / DDPM (learned variance) steps.
    """
    output_dir = Path(output_dir)
    results: dict = {}
    judge = DigitJudge(classifier_path)
    real, real_labels = real_digit_features(judge)
    half = real.shape[0] // 2
    order = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(0))
    real_half_a, real_half_b = real[order[:half]], real[order[half:]]
    results["real_halves_frechet_cct_distance"] = round(frechet(real_half_b, real_half_a), 2)

    dit_dir = output_dir / "dit"
    image_training, seconds = timed(train_dit.main, [
        "--vae_name_or_path", str(vitok_path), "--dataset_name", "digits", "--output_dir", str(dit_dir),
        "--max_train_steps", str(dit_steps), *dit_recipe(output_dir / "latent_cache"),
    ])  # fmt: skip
    results.update({
        "dit_parameters": image_training["num_parameters"], "dit_train_steps": image_training["step"],
        "dit_train_seconds": seconds, "dit_initial_loss": round(image_training["initial_loss"], 4),
        "dit_final_loss": round(image_training["final_loss"], 4),
    })  # fmt: skip
    pipeline = DiffusionPipeline.from_pretrained(dit_dir)
    pipeline.set_progress_bar_config(disable=True)
    reference_scheduler = pipeline.scheduler
    labels = [digit for digit in range(NUM_CLASSES) for _ in range(samples_per_class)]
    label_tensor = torch.tensor(labels)

    pipeline.scheduler = fast_scheduler(reference_scheduler.config)
    sweep, samples_by_scale = {}, {}
    started = time.perf_counter()
    for scale in guidance_scales:
        samples_by_scale[scale] = sample(pipeline, labels, scale, fast_steps)
        sweep[str(scale)] = judge_images(judge, samples_by_scale[scale], label_tensor, real, real_labels, real_half_a)
        print(f"[dit] DPM-Solver++ {fast_steps} steps, guidance {scale}: {sweep[str(scale)]}")
    results["dit_fast_sampling_seconds"] = round(time.perf_counter() - started, 1)
    guidance, reason = choose_guidance(sweep)

    pipeline.scheduler = reference_scheduler
    reference_samples, results["dit_reference_sampling_seconds"] = timed(
        sample, pipeline, labels, guidance, reference_steps
    )
    reference = judge_images(judge, reference_samples, label_tensor, real, real_labels, real_half_a)
    print(f"[dit] DDPM {reference_steps} steps, guidance {guidance}: {reference}")
    fast = sweep[str(guidance)]
    use_fast = fast["class_agreement"] >= reference["class_agreement"] - 0.03
    chosen = fast if use_fast else reference
    shown = samples_by_scale[guidance] if use_fast else reference_samples
    grid_samples = shown.reshape(NUM_CLASSES, samples_per_class, *shown.shape[1:])[:, :10].flatten(0, 1)
    image_grid = save_sample_grid(grid_samples.permute(0, 2, 3, 1).numpy(), NUM_CLASSES, output_dir / "dit_samples")
    results.update({
        "dit_sampler": f"DPM-Solver++ {fast_steps} steps" if use_fast else f"DDPM {reference_steps} steps",
        "dit_guidance_scale": guidance, "dit_guidance_reason": reason,
        "dit_class_agreement": chosen["class_agreement"], "dit_frechet_cct_distance": chosen["frechet_cct_distance"],
        "dit_within_class_spread": chosen["within_class_spread"],
        "dit_fast_class_agreement": fast["class_agreement"], "dit_ddpm250_class_agreement": reference["class_agreement"],
        "dit_ddpm250": reference, "dit_guidance_sweep": sweep, "dit_samples_per_class": samples_per_class,
        "dit_sample_grid": str(image_grid),
    })  # fmt: skip
    return results
