"""diffusers' stock ``DiTPipeline`` on a DDPM-objective folder saved the way ``training/train_dit.py`` saves it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_models
import torch
from diffusers import DDPMScheduler, DiffusionPipeline, DiTPipeline

from hf_compact import AutoencoderViTok, DiTImagePipeline
from hf_compact.dit.samplers import build_sampler

NAMES = ["zero", "one", "two"]
LATENT_CHANNELS = 4


@pytest.fixture(scope="module")
def saved_ddpm_pipeline(tmp_path_factory):
    """train_dit.py's final save for ``--objective ddpm``: EMA transformer with a learned variance (2c outputs),
    the autoencoder with its measured latent scale, ``id2label`` from the class names, and a DDIM scheduler on the
    training noise schedule (the learned-variance DDPM stays one ``build_sampler("ddpm", ...)`` away)."""
    transformer = tiny_models.tiny_dit_2d(len(NAMES), in_channels=LATENT_CHANNELS, out_channels=2 * LATENT_CHANNELS)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in transformer.parameters():  # adaLN-Zero would output zeros
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    vae = AutoencoderViTok(
        latent_channels=LATENT_CHANNELS,
        patch_size=4,
        encoder_width=16,
        encoder_depth=1,
        encoder_heads=2,
        decoder_width=16,
        decoder_depth=1,
        decoder_heads=2,
        sample_size=16,
    )
    vae.register_to_config(scaling_factor=1.7)  # --latent_scaling auto
    training_scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", variance_type="learned_range", clip_sample=False
    )
    scheduler = build_sampler("ddim", "ddpm", training_scheduler.config)
    pipeline = DiTImagePipeline(transformer.eval(), vae, scheduler, id2label=dict(enumerate(NAMES)))
    path = tmp_path_factory.mktemp("dit")
    pipeline.save_pretrained(path)
    return path


def sample(pipeline, **kwargs) -> np.ndarray:
    pipeline.set_progress_bar_config(disable=True)
    kwargs = {"class_labels": [0, 2], "guidance_scale": 1.0, "num_inference_steps": 10, "output_type": "np", **kwargs}
    return pipeline(generator=torch.Generator().manual_seed(0), **kwargs).images


def test_stock_dit_pipeline_loads_and_samples_the_saved_folder(saved_ddpm_pipeline):
    ours = DiffusionPipeline.from_pretrained(saved_ddpm_pipeline)
    assert type(ours) is DiTImagePipeline
    expected = sample(ours)

    stock = DiTPipeline.from_pretrained(saved_ddpm_pipeline)
    assert type(stock) is DiTPipeline and stock.get_label_ids(["two"]) == [2]
    np.testing.assert_allclose(sample(stock), expected, atol=1e-5)
    # the README's form: the stock pipeline built from the components of ours
    stock = DiTPipeline(transformer=ours.transformer, vae=ours.vae, scheduler=ours.scheduler)
    np.testing.assert_allclose(sample(stock), expected, atol=1e-5)
    assert np.isfinite(expected).all() and expected.std() > 0


def test_dit_reference_sampler_comes_back_from_the_saved_scheduler(saved_ddpm_pipeline):
    """DiT's ancestral DDPM with the learned variance, from the saved scheduler config, in our pipeline."""
    config = json.loads((saved_ddpm_pipeline / "scheduler" / "scheduler_config.json").read_text())
    assert config["_class_name"] == "DDIMScheduler" and config["variance_type"] == "learned_range"
    pipeline = DiffusionPipeline.from_pretrained(saved_ddpm_pipeline)
    pipeline.scheduler = build_sampler("ddpm", "ddpm", pipeline.scheduler.config)
    assert pipeline.scheduler.config.variance_type == "learned_range"
    images = sample(pipeline, guidance_scale=2.0)
    assert images.shape == (2, 16, 16, 3) and np.isfinite(images).all()
