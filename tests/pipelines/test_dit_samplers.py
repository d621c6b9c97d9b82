"""Samplers of the DiT pipelines for both objectives (DDPM: epsilon + learned variance; flow matching: velocity),
built by name, and the pipelines' sampling arguments."""

from __future__ import annotations

import math

import pytest
import tiny_models
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.models.modeling_outputs import Transformer2DModelOutput

from hf_compact import DiTImagePipeline, DiTVideoPipeline
from hf_compact.dit.samplers import SAMPLERS, build_sampler, fast_scheduler, scheduler_objective

LATENT_CHANNELS = 4
NUM_CLASSES = 3


def image_pipeline(scheduler) -> DiTImagePipeline:
    transformer = tiny_models.tiny_dit_2d(NUM_CLASSES)
    pipeline = DiTImagePipeline(transformer, tiny_models.tiny_vitok(), scheduler)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def video_pipeline(scheduler) -> DiTVideoPipeline:
    transformer = tiny_models.tiny_dit_3d(NUM_CLASSES, sample_size=2, sample_frames=2)
    vae = tiny_models.tiny_vitok(tubelet_size=2, sample_size=8)
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


def install_flow_oracle(pipeline, clean_latents: torch.Tensor) -> None:
    """Make the transformer predict the exact velocity ``noise - x_0 = (x_t - x_0) / sigma`` of ``x_t`` for the
    known ``x_0``, reading ``sigma`` from the timestep (``sigma * 1000``); extra output channels: 0.3."""

    def oracle(hidden_states, timestep, class_labels, return_dict=True):
        sigma = (timestep.to(hidden_states) / 1000).reshape(-1, *([1] * (hidden_states.ndim - 1)))
        clean = clean_latents.repeat(
            hidden_states.shape[0] // clean_latents.shape[0], *([1] * (clean_latents.ndim - 1))
        )
        velocity = (hidden_states - clean) / sigma
        return Transformer2DModelOutput(sample=torch.cat([velocity, torch.full_like(velocity, 0.3)], dim=1))

    pipeline.transformer.forward = oracle


@pytest.mark.parametrize("make_pipeline, grid", [(image_pipeline, (4, 4)), (video_pipeline, (2, 2, 2))])
@pytest.mark.parametrize(
    "sampler, num_steps, expected_channels",
    [
        ("dpmsolver++", 25, LATENT_CHANNELS),
        ("unipc", 25, LATENT_CHANNELS),
        ("ddim", 25, LATENT_CHANNELS),
        ("ddpm", 250, 2 * LATENT_CHANNELS),
    ],
)
@pytest.mark.parametrize("guidance_scale", [1.0, 4.0])
def test_ddpm_samplers_recover_x0_from_an_exact_noise_prediction(
    make_pipeline, grid, sampler, num_steps, expected_channels, guidance_scale
):
    """With the exact epsilon of a known x_0 every sampler must land on x_0; only DDPM gets the variance half."""
    ddpm = DDPMScheduler(variance_type="learned_range", clip_sample=False)  # the training scheduler of train_dit.py
    pipeline = make_pipeline(build_sampler(sampler, "ddpm", ddpm.config))
    generator = torch.Generator().manual_seed(0)
    clean_latents = torch.randn(2, LATENT_CHANNELS, *grid, generator=generator)
    install_oracle(pipeline, clean_latents, ddpm)
    channels_seen = record_step_inputs(pipeline.scheduler)

    noise = torch.randn(clean_latents.shape, generator=generator)
    sampled = pipeline.denoise(noise, torch.tensor([0, 2]), guidance_scale, num_steps, generator)

    assert set(channels_seen) == {expected_channels}
    assert len(channels_seen) == num_steps
    torch.testing.assert_close(sampled, clean_latents, atol=2e-3, rtol=0)


@pytest.mark.parametrize("make_pipeline, grid", [(image_pipeline, (4, 4)), (video_pipeline, (2, 2, 2))])
@pytest.mark.parametrize(
    "sampler, num_steps, num_evaluations, atol",
    # the multistep solvers round the timestep down to an integer (sigma 0.9997 is timestep 999): 1e-3 of |noise - x_0|
    [("euler", 8, 8, 1e-5), ("heun", 4, 7, 1e-5), ("dpmsolver++", 8, 8, 5e-3), ("unipc", 8, 8, 5e-3)],
)
@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("guidance_scale", [1.0, 4.0])
def test_flow_matching_samplers_recover_x0_from_an_exact_velocity(
    make_pipeline, grid, sampler, num_steps, num_evaluations, atol, shift, guidance_scale
):
    """x_t = (1 - sigma) x_0 + sigma noise, velocity noise - x_0 at timestep 1000 sigma: each flow sampler lands on
    x_0, with the c velocity channels only (the learned-sigma image transformer's extra channels are dropped)."""
    pipeline = make_pipeline(build_sampler(sampler, "flow_matching", {"shift": shift}))
    generator = torch.Generator().manual_seed(0)
    clean_latents = torch.randn(2, LATENT_CHANNELS, *grid, generator=generator)
    install_flow_oracle(pipeline, clean_latents)
    channels_seen = record_step_inputs(pipeline.scheduler)

    noise = torch.randn(clean_latents.shape, generator=generator)
    sampled = pipeline.denoise(noise, torch.tensor([0, 2]), guidance_scale, num_steps, generator)

    assert channels_seen == [LATENT_CHANNELS] * num_evaluations
    torch.testing.assert_close(sampled, clean_latents, atol=atol, rtol=0)


@pytest.mark.parametrize("objective", ["ddpm", "flow_matching"])
def test_build_sampler_by_name(objective):
    training_config = (
        DDPMScheduler(beta_schedule="linear", variance_type="learned_range", clip_sample=False).config
        if objective == "ddpm"
        else FlowMatchEulerDiscreteScheduler(shift=2.5).config
    )
    expected_types = {
        "ddpm": (DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler),
        "flow_matching": (
            FlowMatchEulerDiscreteScheduler,
            FlowMatchHeunDiscreteScheduler,
            DPMSolverMultistepScheduler,
            UniPCMultistepScheduler,
        ),
    }[objective]
    for name, expected_type in zip(SAMPLERS[objective], expected_types):
        scheduler = build_sampler(name, objective, training_config)
        assert type(scheduler) is expected_type and scheduler_objective(scheduler) == objective
        if objective == "flow_matching":
            assert scheduler.config.get("shift", scheduler.config.get("flow_shift")) == 2.5
            if name in ("dpmsolver++", "unipc"):
                assert scheduler.config.use_flow_sigmas and scheduler.config.prediction_type == "flow_prediction"
        else:
            torch.testing.assert_close(scheduler.alphas_cumprod, DDPMScheduler().alphas_cumprod)


def test_the_reference_ddpm_comes_back_from_a_saved_solver_config():
    """A pipeline saved with DDIM (or DPM-Solver++) keeps the training variance type in its config."""
    training_config = DDPMScheduler(variance_type="learned_range").config
    assert build_sampler("ddpm", "ddpm", training_config).config.variance_type == "learned_range"
    ddim = build_sampler("ddim", "ddpm", training_config)
    assert build_sampler("ddpm", "ddpm", ddim.config).config.variance_type == "learned_range"


def test_build_sampler_rejects_unknown_names():
    with pytest.raises(
        ValueError, match=r"name: expected one of \('euler'.*for objective 'flow_matching', got 'ddim'"
    ):
        build_sampler("ddim", "flow_matching")
    with pytest.raises(ValueError, match="objective: expected one of"):
        build_sampler("euler", "rectified")
    flow_config = build_sampler("unipc", "flow_matching", {"shift": 3.0}).config
    with pytest.raises(
        ValueError, match="config: expected the config of a 'ddpm' scheduler, got one of a 'flow_matching'"
    ):
        build_sampler("ddim", "ddpm", flow_config)
    with pytest.raises(ValueError, match="config: expected the config of a 'flow_matching' scheduler"):
        build_sampler("euler", "flow_matching", DDPMScheduler().config)


def test_learned_variance_ddpm_needs_a_transformer_that_predicts_it():
    """A flow-matching-sized transformer (c output channels) cannot feed DDPM's learned variance."""
    pipeline = video_pipeline(DDPMScheduler(variance_type="learned_range"))
    pipeline.transformer.out_channels = LATENT_CHANNELS
    with pytest.raises(ValueError, match="scheduler: DDPMScheduler with variance_type='learned_range' needs"):
        pipeline([0], num_inference_steps=2)


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
        ({"guidance_interval": (0.6, 0.2)}, ValueError, r"guidance_interval: expected \(start, end\) with 0 <= start"),
        ({"guidance_interval": (-0.1, 0.5)}, ValueError, "guidance_interval"),
        ({"guidance_interval": (0.2, math.nan)}, ValueError, "guidance_interval"),
        ({"guidance_interval": 0.5}, ValueError, "guidance_interval"),
        ({"guidance_interval": (0.1, 0.2, 0.3)}, ValueError, "guidance_interval"),
        ({"guidance_rescale": 1.5}, ValueError, r"guidance_rescale: expected a number in \[0, 1\], got 1.5"),
        ({"guidance_rescale": math.nan}, ValueError, "guidance_rescale"),
    ],
)
def test_pipelines_reject_bad_sampling_arguments(make_pipeline, kwargs, error, message):
    pipeline = make_pipeline(DDIMScheduler())
    with pytest.raises(error, match=message):
        pipeline([0], **kwargs)
