"""Demo part 4: class-conditional moving-digit videos (CPU, no downloads, fixed step budgets).

Moving-digit clips (:func:`hf_compact.data.moving_digits.load_moving_digits_dataset`) train a tiny video ViTok
(``train_vitok.py``, tubelets) and a ``DiTTransformer3DModel`` on its latents (``train_dit.py``).
``DiTVideoPipeline`` generates clips per class with DPM-Solver++ (25 steps) and with the learned-variance DDPM
(250 steps). :func:`judge` then classifies every frame with the demo's CCT, each frame cropped to its digit
(:func:`demo_judge.crop_to_digit`): ``video_class_agreement``, next to the same judge on real held-out clips
(``video_real_class_agreement``, the ceiling of the measurement). :func:`run` needs no classifier, so it trains
while the image stages run in another process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import train_dit  # noqa: E402
import train_vitok  # noqa: E402
from demo_dit import dit_recipe, sample, timed  # noqa: E402
from demo_judge import NUM_CLASSES, DigitJudge, class_agreement, crop_to_digit  # noqa: E402
from diffusers import DiffusionPipeline  # noqa: E402
from PIL import Image  # noqa: E402

import hf_compact  # noqa: E402,F401  (registers the pipelines with diffusers)
from hf_compact.data.moving_digits import load_moving_digits_dataset  # noqa: E402
from hf_compact.dit.sample_grid import save_sample_grid  # noqa: E402
from hf_compact.dit.samplers import fast_scheduler  # noqa: E402

VIDEO_VITOK = {
    "latent_channels": 8, "patch_size": 4, "tubelet_size": 2, "encoder_width": 64, "encoder_depth": 2,
    "encoder_heads": 2, "decoder_width": 64, "decoder_depth": 2, "decoder_heads": 2,
}  # fmt: skip
NUM_FRAMES = 4
# Digit side on the 32 px canvas: 24 px leaves 8 px of travel, so a digit moves 3-7 px along each axis over its 4
# frames (bouncing off the borders) while the DiT has fewer positions to learn than with 20 px (12 px of travel); at
# 3000 steps this lifted per-frame agreement from 0.83 to 0.88 (DPM-Solver++, guidance 6).
DIGIT_SIZE = 24
FAST_STEPS, REFERENCE_STEPS = 25, 250


def write_clips_as_frame_folders(num_frames: int, digit_size: int, root: Path) -> Path:
    """Moving-digit training clips as ``root/clip-XXXXX/frame-Y.png`` (the layout ``train_vitok.py`` reads)."""
    clips = load_moving_digits_dataset(num_frames=num_frames, digit_size=digit_size)["train"]
    videos = clips.with_format("numpy")[:]["video"].astype(np.uint8)
    for index, video in enumerate(videos):
        folder = root / f"clip-{index:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for frame_index, frame in enumerate(video):
            Image.fromarray(frame).save(folder / f"frame-{frame_index}.png")
    return root


def run(
    output_dir: Path,
    vitok_steps: int = 400,
    dit_steps: int = 3000,
    samples_per_class: int = 4,
    guidance_scale: float = 6.0,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Train the video ViTok and the video DiT and sample clips with both samplers.

    Args:
        output_dir: demo folder (this part writes ``moving_digits/``, ``vitok_video/`` and ``dit_video/``).
        vitok_steps / dit_steps: training steps of the video ViTok / video DiT.
        samples_per_class / guidance_scale: generated clips per digit and their guidance.

    Returns:
        The numbers for ``results.json`` and ``{"fast": clips, "ddpm250": clips}``, each ``(10 *
        samples_per_class, T, 3, 32, 32)`` in [0, 1], digits in order.
    """
    output_dir = Path(output_dir)
    vitok_dir, dit_dir = output_dir / "vitok_video", output_dir / "dit_video"
    clips_root = write_clips_as_frame_folders(NUM_FRAMES, DIGIT_SIZE, output_dir / "moving_digits" / "train")
    vitok, vitok_seconds = timed(train_vitok.main, [
        "--train_dir", str(clips_root), "--num_frames", str(NUM_FRAMES), "--resolution", "32",
        "--model_overrides", json.dumps(VIDEO_VITOK), "--lpips_weight", "0", "--learning_rate", "2e-3",
        "--lr_warmup_ratio", "0.03", "--max_train_steps", str(vitok_steps), "--per_device_train_batch_size", "16",
        "--max_eval_samples", "64", "--mixed_precision", "no", "--seed", "0", "--output_dir", str(vitok_dir),
        "--overwrite_output_dir",
    ])  # fmt: skip
    training, dit_seconds = timed(train_dit.main, [
        "--vae_name_or_path", str(vitok_dir), "--dataset_name", "moving_digits", "--num_frames", str(NUM_FRAMES),
        "--digit_size", str(DIGIT_SIZE), "--video", "--output_dir", str(dit_dir), "--max_train_steps", str(dit_steps),
        *dit_recipe(output_dir / "latent_cache"),
    ])  # fmt: skip
    pipeline = DiffusionPipeline.from_pretrained(dit_dir)
    pipeline.set_progress_bar_config(disable=True)
    labels = [digit for digit in range(NUM_CLASSES) for _ in range(samples_per_class)]
    reference_scheduler = pipeline.scheduler
    clips, sampling_seconds = {}, 0.0
    for name, scheduler, steps in (
        ("fast", fast_scheduler(reference_scheduler.config), FAST_STEPS),
        ("ddpm250", reference_scheduler, REFERENCE_STEPS),
    ):
        pipeline.scheduler = scheduler
        clips[name], seconds = timed(sample, pipeline, labels, guidance_scale, steps, batch_size=30)
        sampling_seconds += seconds
    results = {
        "video_vitok_psnr": round(vitok["psnr"], 2), "video_vitok_train_steps": vitok["step"],
        "video_vitok_train_seconds": vitok_seconds, "video_dit_parameters": training["num_parameters"],
        "video_dit_train_steps": training["step"], "video_dit_train_seconds": dit_seconds,
        "video_dit_final_loss": round(training["final_loss"], 4), "video_sampling_seconds": round(sampling_seconds, 1),
        "video_guidance_scale": guidance_scale, "video_samples_per_class": samples_per_class,
    }  # fmt: skip
    return results, clips


def judge(output_dir: Path, classifier_path: Path, clips: dict[str, torch.Tensor]) -> dict:
    """Per-frame class agreement of :func:`run`'s clips and of real held-out clips; saves the chosen clips as a GIF
    (one row per digit). The fast sampler is used when it is within 0.03 of DDPM-250."""
    digit_judge = DigitJudge(classifier_path)
    num_clips, num_frames = clips["fast"].shape[:2]
    frame_labels = torch.arange(NUM_CLASSES).repeat_interleave(num_clips // NUM_CLASSES * num_frames)
    agreements = {
        name: class_agreement(digit_judge(crop_to_digit(samples.flatten(0, 1)))[0], frame_labels)
        for name, samples in clips.items()
    }
    real_clips = load_moving_digits_dataset(num_frames=num_frames, digit_size=DIGIT_SIZE)["test"].with_format("torch")[
        :
    ]
    real_frames = real_clips["video"].flatten(0, 1).permute(0, 3, 1, 2).float() / 255  # (N * T, 3, H, W)
    predicted, _ = digit_judge(crop_to_digit(real_frames))
    use_fast = agreements["fast"] >= agreements["ddpm250"] - 0.03
    shown = clips["fast" if use_fast else "ddpm250"]
    motion = (shown[:, 1:] - shown[:, :-1]).abs().mean()
    gif = save_sample_grid(shown.permute(0, 1, 3, 4, 2).numpy(), NUM_CLASSES, Path(output_dir) / "dit_video_samples")
    return {
        "video_sampler": f"DPM-Solver++ {FAST_STEPS} steps" if use_fast else f"DDPM {REFERENCE_STEPS} steps",
        "video_class_agreement": agreements["fast" if use_fast else "ddpm250"],
        "video_fast_class_agreement": agreements["fast"], "video_ddpm250_class_agreement": agreements["ddpm250"],
        "video_real_class_agreement": class_agreement(predicted, real_clips["label"].repeat_interleave(num_frames)),
        "video_mean_frame_change": round(float(motion), 4), "video_samples": str(gif),
    }  # fmt: skip
