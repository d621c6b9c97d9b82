"""The ViTok-v2 -> DiT recipe (``training/configs/dit_xl_vitok_v2_350m_imagenet256.yaml``) end to end, on a tiny
ViTok-v2 of the same family (random weights, official variant string) and the bundled digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from diffusers import UniPCMultistepScheduler
from launch import load_training_script

import hf_compact  # noqa: F401  (registers the pipelines)
from hf_compact import AutoencoderViTok, DiTImagePipeline
from hf_compact.data import load_digits_dataset
from hf_compact.data.latent_cache import pixels_from_example
from hf_compact.vitok.latent_statistics import compute_latent_std
from hf_compact.vitok.presets import VITOK_PRESETS, v2_config_from_variant

train_dit = load_training_script("train_dit")

CONFIG = Path(__file__).resolve().parents[2] / "training" / "configs" / "dit_xl_vitok_v2_350m_imagenet256.yaml"
TINY_V2 = "Bd1w64h2-Bd2w64h2/1x4x8"  # ViTok-v2's architecture: patch 4, 8 latent channels, 1 + 2 blocks of width 64


def test_recipe_describes_the_published_350m_latents():
    recipe = yaml.safe_load(CONFIG.read_text())
    published = VITOK_PRESETS["v2-350M-f16x16"]
    assert published["latent_type"] == "deterministic" and published["patch_size"] == 16
    assert recipe["resolution"] // published["patch_size"] == 16 and published["latent_channels"] == 16
    assert recipe["objective"] == "flow_matching" and recipe["preset"] == "DiT-XL" and recipe["patch_size"] == 1
    assert recipe["latent_scaling"] == "auto" and recipe["guidance_interval"] == [0.1, 1.0]


@pytest.fixture(scope="module")
def tiny_v2_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vitok_v2")
    AutoencoderViTok(**v2_config_from_variant(TINY_V2), sample_size=32).save_pretrained(path)
    return path


def test_recipe_trains_a_flow_matching_dit_on_a_tiny_vitok_v2(tiny_v2_dir, tmp_path):
    results = train_dit.main(
        [
            "--config", str(CONFIG), "--vae_name_or_path", str(tiny_v2_dir),
            "--dataset_name", "digits", "--resolution", "32", "--output_dir", str(tmp_path / "run"),
            "--latent_cache_dir", str(tmp_path / "cache"), "--preset", "DiT-S", "--num_layers", "1",
            "--num_attention_heads", "2", "--attention_head_dim", "8", "--per_device_train_batch_size", "8",
            "--max_train_steps", "2", "--mixed_precision", "no", "--sample_steps", "2",
            "--num_inference_steps", "2", "--samples_per_class", "1", "--seed", "0",
        ]
    )  # fmt: skip
    assert results["train_steps"] == 2 and results["objective"] == "flow_matching"
    assert results["flow_shift"] == 1.0  # (8, 8, 8) latents: below SiT's 4096 values, unshifted

    # ViTok-v2's LayerNorm-ed latent has unit variance by construction; `auto` measures what the DiT trains on.
    vae = AutoencoderViTok.from_pretrained(tiny_v2_dir)
    digits = load_digits_dataset(image_size=32)["train"]
    pixels = torch.stack([pixels_from_example(image) for image in digits["image"]])
    std = compute_latent_std(vae, pixels.split(256), show_progress=False)
    assert results["latent_scaling_factor"] == pytest.approx(1 / std, rel=1e-5)
    assert abs(results["latent_scaling_factor"] - 1) < 0.05
    assert (tmp_path / "run" / "samples" / "final.png").is_file()

    pipeline = DiTImagePipeline.from_pretrained(tmp_path / "run")
    assert type(pipeline) is DiTImagePipeline and pipeline.vae.config.latent_type == "deterministic"
    assert pipeline.vae.config.scaling_factor == results["latent_scaling_factor"]
    config = pipeline.transformer.config
    assert (config.in_channels, config.out_channels, config.sample_size, config.patch_size) == (8, 8, 8, 1)
    scheduler = pipeline.scheduler.config
    assert (
        type(pipeline.scheduler) is UniPCMultistepScheduler and scheduler.use_flow_sigmas and scheduler.flow_shift == 1
    )
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(
        [3, 7], guidance_scale=1.5, guidance_interval=(0.1, 1.0), num_inference_steps=2, output_type="pt"
    )
    assert images.images.shape == (2, 3, 32, 32) and torch.isfinite(images.images).all()
