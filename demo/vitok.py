"""Demo part 2: a small ViTok autoencoder trained on scikit-learn's digits (32 px, CPU, no downloads).

The model is ViTok's architecture at toy size (patch 4, 4 latent channels, 2+2 blocks of width 64) trained with
``training/train_vitok.py`` stage 1 (its command line). Four channels on the 8x8 token grid (256 floats per image,
ViTok's "E") are plenty for 8x8 scans and, as the ViTok paper finds for generation, a smaller E is easier for the
DiT: after 1000 steps (plain loss, guidance 4) an earlier demo DiT reached class agreement 0.39 on 16-channel latents
and 0.99 on 4-channel ones, for 34.7 vs 32.8 dB PSNR. LPIPS is switched off: no pretrained VGG16 / LPIPS weights can
be downloaded here, and a random VGG16 would not be a perceptual loss. So the objective is MSE + 1e-3 * KL. The
trained autoencoder is left at ``output_dir / "vitok"`` (the DiT part trains on its latents).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .recipes import run_recipe

DEMO_VITOK = {
    "patch_size": 4,
    "latent_channels": 4,
    "encoder_width": 64,
    "encoder_depth": 2,
    "encoder_heads": 2,
    "decoder_width": 64,
    "decoder_depth": 2,
    "decoder_heads": 2,
}


def run(output_dir: Path, max_steps: int = 400, batch_size: int = 32) -> dict:
    """Train the demo ViTok and measure it on the held-out digits; returns the numbers for ``results.json``.

    Args:
        output_dir: demo folder; writes ``vitok/`` (the ``save_pretrained`` model and its evaluation grids) and
            ``vitok_reconstructions.png`` (top: held-out digits, bottom: reconstructions).
        max_steps: training steps (the cosine schedule spans them).
        batch_size: images per step.
    """
    output_dir = Path(output_dir)
    vitok_dir = output_dir / "vitok"
    results = run_recipe(
        "train_vitok.py",
        [
            "--dataset_name", "digits", "--resolution", "32", "--preset", "S-B/16",
            "--model_overrides", json.dumps(DEMO_VITOK),
            "--lpips_weight", "0",  # no pretrained LPIPS weights offline (see module docstring)
            "--learning_rate", "2e-3", "--lr_warmup_ratio", "0.03",
            "--per_device_train_batch_size", str(batch_size), "--per_device_eval_batch_size", "120",
            "--max_train_steps", str(max_steps),
            "--max_eval_samples", "1000", "--num_grid_samples", "12",
            "--mixed_precision", "no", "--seed", "0", "--output_dir", str(vitok_dir), "--overwrite_output_dir",
        ]
    )  # fmt: skip
    grid = output_dir / "vitok_reconstructions.png"
    shutil.copy(vitok_dir / "reconstructions-final.png", grid)
    return {
        "vitok_psnr": round(results["eval_psnr"], 2),
        "vitok_ssim": round(results["eval_ssim"], 4),
        "vitok_parameters": results["num_parameters"],
        "vitok_train_steps": results["train_steps"],
        "vitok_train_seconds": round(results["train_seconds"], 1),
        "vitok_first_train_loss": round(results["first_train_loss"], 4),
        "vitok_final_train_loss": round(results["train_loss"], 4),
        "vitok_lpips": "off: no pretrained VGG16/LPIPS weights offline, objective is MSE + 1e-3 KL",
        "vitok_reconstruction_grid": str(grid),
    }
