"""Samplers of the DiT pipelines: learned-variance DDPM (reference) and DPM-Solver++ (fast), and their inputs."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiTTransformer2DModel, DPMSolverMultistepScheduler
from diffusers.models.modeling_outputs import Transformer2DModelOutput

from hf_compact import AutoencoderViTok, DiTImagePipeline, DiTTransformer3DModel, DiTVideoPipeline
from hf_compact.dit.samplers import fast_scheduler

LATENT_CHANNELS = 4
NUM_CLASSES = 3


def image_pipeline(scheduler) -> DiTImagePipeline:
    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=LATENT_CHANNELS,
        out_channels=2 * LATENT_CHANNELS,
        num_layers=1,
        sample_size=4,
        patch_size=1,
        norm_num_groups=1,
        num_embeds_ada_norm=NUM_CLASSES,
    ).eval()
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
    pipeline = DiTImagePipeline(transformer, vae, scheduler)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def video_pipeline(scheduler) -> DiTVideoPipeline:
    torch.manual_seed(0)
    transformer = DiTTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=LATENT_CHANNELS,
        num_layers=1,
        sample_size=2,
        sample_frames=2,
        num_embeds_ada_norm=NUM_CLASSES,
    ).eval()
    vae = AutoencoderViTok(
        latent_channels=LATENT_CHANNELS,
        patch_size=4,
        tubelet_size=2,
        encoder_width=16,
        encoder_depth=1,
        encoder_heads=2,
        decoder_width=16,
        decoder_depth=1,
        decoder_heads=2,
        sample_size=8,
    )
    pipeline = DiTVideoPipeline(transformer, vae, scheduler)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def install_oracle(pipeline, clean_latents: torch.Tensor, scheduler: DDPMScheduler) -> None:
    """Make the transformer predict the exact noise of ``x_t`` for the known ``x_0`` (variance channels: 0.3)."""
    alphas_cumprod = scheduler.alphas_cumprod

    def oracle(hidden_states, timestep, class_labels, return_dict=True):
        abar = alphas_cumprod[timestep.long()].reshape(-1, *([1] * (hidden_states.ndim - 1))).to(hidden_states)
        clean = clean_latents.repeat(
            hidden_states.shape[0] // clean_latents.shape[0], *([1] * (clean_latents.ndim - 1))
        )
        noise = (hidden_states - abar.sqrt() * clean) / (1 - abar).sqrt()  # guidance doubles the batch
        return Transformer2DModelOutput(sample=torch.cat([noise, torch.full_like(noise, 0.3)], dim=1))

    pipeline.transformer.forward = oracle


def record_step_inputs(scheduler) -> list[int]:
    channels_seen = []
    step = scheduler.step

    def recording_step(model_output, *args, **kwargs):
        channels_seen.append(model_output.shape[1])
        return step(model_output, *args, **kwargs)

    scheduler.step = recording_step
    return channels_seen


@pytest.mark.parametrize("make_pipeline, grid", [(image_pipeline, (4, 4)), (video_pipeline, (2, 2, 2))])
@pytest.mark.parametrize(
    "sampler, num_steps, expected_channels",
    [
        ("dpm-solver++", 25, LATENT_CHANNELS),
        ("ddim", 25, LATENT_CHANNELS),
        ("ddpm", 250, 2 * LATENT_CHANNELS),
    ],
)
@pytest.mark.parametrize("guidance_scale", [1.0, 4.0])
def test_samplers_recover_x0_from_an_exact_noise_prediction(
    make_pipeline, grid, sampler, num_steps, expected_channels, guidance_scale
):
    """With the exact epsilon of a known x_0 every sampler must land on x_0; only DDPM gets the variance half."""
    ddpm = DDPMScheduler(variance_type="learned_range", clip_sample=False)  # as train_dit.py saves it
    scheduler = {
        "ddpm": ddpm,
        "ddim": DDIMScheduler.from_config(ddpm.config),
        "dpm-solver++": fast_scheduler(ddpm.config),
    }[sampler]
    pipeline = make_pipeline(scheduler)
    generator = torch.Generator().manual_seed(0)
    clean_latents = torch.randn(2, LATENT_CHANNELS, *grid, generator=generator)
    install_oracle(pipeline, clean_latents, ddpm)
    channels_seen = record_step_inputs(pipeline.scheduler)

    noise = torch.randn(clean_latents.shape, generator=generator)
    sampled = pipeline.denoise(noise, torch.tensor([0, 2]), guidance_scale, num_steps, generator)

    assert set(channels_seen) == {expected_channels}
    assert len(channels_seen) == num_steps
    torch.testing.assert_close(sampled, clean_latents, atol=2e-3, rtol=0)


def test_fast_scheduler_keeps_the_training_noise_schedule():
    ddpm = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, variance_type="learned_range")
    fast = fast_scheduler(ddpm.config)
    assert isinstance(fast, DPMSolverMultistepScheduler)
    assert fast.config.variance_type is None and fast.config.algorithm_type == "dpmsolver++"
    torch.testing.assert_close(fast.alphas_cumprod, ddpm.alphas_cumprod)
    fast.set_timesteps(25)
    assert len(fast.timesteps) == 25 and fast.timesteps[0] == 999


def test_fast_sampler_gives_images_in_range():
    pipeline = image_pipeline(fast_scheduler(DDPMScheduler(variance_type="learned_range").config))
    images = pipeline([0, 1], num_inference_steps=10, guidance_scale=2.0, output_type="pt").images
    assert images.shape == (2, 3, 16, 16) and images.min() >= 0 and images.max() <= 1


def test_a_solver_that_would_slice_the_variance_itself_is_rejected():
    """diffusers' DPM-Solver with a learned variance keeps ``[:, :3]``: wrong for 4 latent channels."""
    pipeline = image_pipeline(DPMSolverMultistepScheduler(variance_type="learned_range"))
    with pytest.raises(ValueError, match="variance_type=None"):
        pipeline([0], num_inference_steps=5)


@pytest.mark.parametrize("make_pipeline", [image_pipeline, video_pipeline])
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_inference_steps": 0}, ValueError, "num_inference_steps"),
        ({"num_inference_steps": -3}, ValueError, "num_inference_steps"),
        ({"num_inference_steps": 2.5}, TypeError, "num_inference_steps"),
        ({"guidance_scale": math.nan}, ValueError, "guidance_scale"),
        ({"guidance_scale": math.inf}, ValueError, "guidance_scale"),
        ({"guidance_scale": "4"}, ValueError, "guidance_scale"),
    ],
)
def test_pipelines_reject_bad_sampling_arguments(make_pipeline, kwargs, error, message):
    pipeline = make_pipeline(DDIMScheduler())
    with pytest.raises(error, match=message):
        pipeline([0], **kwargs)
