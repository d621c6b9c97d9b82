"""Demo part 3: class-conditional generation on the demo ViTok's latents (CPU, no downloads).

Images: a small DiT (``DiTTransformer2DModel``, patch 2 on the 8x8 latent grid) is trained on the latents of the demo's
ViTok for the scikit-learn digits (``train_dit.py``), generates 10 images per class with ``DiTImagePipeline``
(grid PNG), and the demo's CCT classifies them (``eval_generation.py``): ``dit_class_agreement``.

Videos: moving-digit clips made from the same digits train a tiny video ViTok (``train_vitok.py``, tubelets) and a
``DiTTransformer3DModel`` on its video latents; ``DiTVideoPipeline`` generates clips per class (GIF) and the CCT
classifies every frame: ``video_class_agreement``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_generation  # noqa: E402
import numpy as np  # noqa: E402
import train_dit  # noqa: E402
import train_vitok  # noqa: E402
from PIL import Image  # noqa: E402

from hf_compact.data.moving_digits import load_moving_digits_dataset  # noqa: E402

VIDEO_VITOK = {
    "latent_channels": 8, "patch_size": 4, "tubelet_size": 2, "encoder_width": 64, "encoder_depth": 2,
    "encoder_heads": 2, "decoder_width": 64, "decoder_depth": 2, "decoder_heads": 2,
}


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
    vitok_path: Path,
    classifier_path: Path,
    dit_seconds: float = 300.0,
    dit_steps: int = 5000,
    samples_per_class: int = 10,
    guidance_scale: float = 8.0,
    num_inference_steps: int = 250,
    video_guidance_scale: float = 3.0,
    video_vitok_steps: int = 300,
    video_dit_seconds: float = 90.0,
    video_dit_steps: int = 1500,
    video_samples_per_class: int = 2,
    num_frames: int = 4,
    digit_size: int = 24,
) -> dict:
    """Train and evaluate both generation paths; returns the numbers for ``results.json``.

    Args:
        output_dir: demo folder (this part writes ``dit/``, ``dit_video/``, ``vitok_video/`` and grids there).
        vitok_path: the demo's image ViTok (``save_pretrained`` folder, trained on the 32 px digits).
        classifier_path: the demo's CCT (``CCTForImageClassification`` folder with its image processor).
        dit_seconds / dit_steps: image DiT budget (whichever ends first).
        samples_per_class: generated images per digit for the agreement and the grid.
        guidance_scale / num_inference_steps: image sampling settings (DDPM with the learned variance, as DiT).
        video_guidance_scale: guidance of the video samples (same DDPM sampler and step count).
        video_vitok_steps: training steps of the video ViTok.
        video_dit_seconds / video_dit_steps: video DiT budget.
        video_samples_per_class: generated clips per digit.
        num_frames / digit_size: moving-digit clips (frames; digit side on the 32 px canvas).
    """
    output_dir = Path(output_dir)
    latent_cache = output_dir / "latent_cache"
    common_dit = [
        "--lr_scheduler", "constant_with_warmup", "--per_device_train_batch_size", "32", "--ema_decay", "0.999", "--latent_scaling", "auto",
        "--latent_cache_dir", str(latent_cache), "--mixed_precision", "no", "--seed", "0",
    ]

    # ---- images
    dit_dir = output_dir / "dit"
    image_training = train_dit.main([
        "--vae_name_or_path", str(vitok_path), "--dataset_name", "digits", "--output_dir", str(dit_dir),
        "--preset", "DiT-S", "--num_layers", "4", "--num_attention_heads", "4", "--attention_head_dim", "32",
        "--patch_size", "2", "--learning_rate", "2e-3", "--lr_warmup_steps", "100",
        "--max_train_steps", str(dit_steps), "--max_train_seconds", str(dit_seconds), *common_dit,
    ])
    image_eval = eval_generation.main([
        "--pipeline_name_or_path", str(dit_dir), "--classifier_name_or_path", str(classifier_path),
        "--num_samples_per_class", str(samples_per_class), "--guidance_scale", str(guidance_scale),
        "--num_inference_steps", str(num_inference_steps), "--batch_size", "100",
        "--output_dir", str(output_dir / "dit_eval"),
    ])
    image_grid = output_dir / "dit_samples.png"
    Path(image_eval["sample_grid"]).replace(image_grid)

    # ---- videos
    video_vitok_dir = output_dir / "vitok_video"
    clips_root = write_clips_as_frame_folders(num_frames, digit_size, output_dir / "moving_digits" / "train")
    video_vitok = train_vitok.main([
        "--train_dir", str(clips_root), "--num_frames", str(num_frames), "--resolution", "32",
        "--model_overrides", json.dumps(VIDEO_VITOK), "--lpips_weight", "0", "--learning_rate", "1e-3",
        "--lr_warmup_ratio", "0.05", "--max_train_steps", str(video_vitok_steps), "--per_device_train_batch_size", "16",
        "--max_eval_samples", "64", "--mixed_precision", "no", "--output_dir", str(video_vitok_dir),
    ])
    video_dit_dir = output_dir / "dit_video"
    video_training = train_dit.main([
        "--vae_name_or_path", str(video_vitok_dir), "--dataset_name", "moving_digits", "--num_frames", str(num_frames),
        "--video", "--output_dir", str(video_dit_dir), "--preset", "DiT-S", "--num_layers", "4",
        "--num_attention_heads", "4", "--attention_head_dim", "32", "--learning_rate", "5e-4", "--lr_warmup_steps", "50",
        "--max_train_steps", str(video_dit_steps), "--max_train_seconds", str(video_dit_seconds), *common_dit,
    ])
    video_eval = eval_generation.main([
        "--pipeline_name_or_path", str(video_dit_dir), "--classifier_name_or_path", str(classifier_path),
        "--num_samples_per_class", str(video_samples_per_class), "--guidance_scale", str(video_guidance_scale),
        "--num_inference_steps", str(num_inference_steps), "--batch_size", "20",
        "--output_dir", str(output_dir / "dit_video_eval"),
    ])
    video_grid = output_dir / "dit_video_samples.gif"
    Path(video_eval["sample_grid"]).replace(video_grid)

    return {
        "dit_class_agreement": round(image_eval["class_agreement"], 4),
        "dit_parameters": image_training["num_parameters"],
        "dit_train_steps": image_training["step"],
        "dit_train_seconds": round(image_training["train_seconds"], 1),
        "dit_initial_loss": round(image_training["initial_loss"], 4),
        "dit_final_loss": round(image_training["final_loss"], 4),
        "dit_guidance_scale": guidance_scale,
        "dit_sample_grid": str(image_grid),
        "video_vitok_psnr": round(video_vitok["psnr"], 2) if "psnr" in video_vitok else None,
        "video_dit_parameters": video_training["num_parameters"],
        "video_dit_train_steps": video_training["step"],
        "video_dit_train_seconds": round(video_training["train_seconds"], 1),
        "video_class_agreement": round(video_eval["video_class_agreement"], 4),
        "video_samples": str(video_grid),
    }
