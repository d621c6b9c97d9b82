"""DiTImagePipeline (guidance for any class count, interval and rescale, both objectives, saved id2label),
DiTTransformer3DModel and DiTVideoPipeline."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DiTPipeline,
    DiTTransformer2DModel,
    FlowMatchEulerDiscreteScheduler,
)

from hf_compact import AutoencoderViTok, DiTImagePipeline, DiTTransformer3DModel, DiTVideoPipeline

NUM_CLASSES = 5


def tiny_image_vae(latent_channels: int = 4) -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=latent_channels,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=8,
    )


def tiny_transformer_2d(num_classes: int = NUM_CLASSES) -> DiTTransformer2DModel:
    torch.manual_seed(1)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        sample_size=4,
        patch_size=1,
        norm_num_groups=1,
        num_embeds_ada_norm=num_classes,
    )
    randomize(transformer)
    return transformer.eval()  # train() mode would drop labels at random (diffusers' LabelEmbedding)


def randomize(model: torch.nn.Module) -> None:
    """adaLN-Zero starts every output at zero; random weights make the tests see real computations."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


def tiny_video_vae() -> AutoencoderViTok:
    torch.manual_seed(0)
    return AutoencoderViTok(
        latent_channels=4,
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


def tiny_transformer_3d(num_classes: int = NUM_CLASSES, **overrides) -> DiTTransformer3DModel:
    torch.manual_seed(1)
    config = dict(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        num_layers=1,
        sample_size=2,
        sample_frames=2,
        patch_size=1,
        num_embeds_ada_norm=num_classes,
    )
    transformer = DiTTransformer3DModel(**{**config, **overrides})
    randomize(transformer)
    return transformer.eval()


@pytest.fixture(scope="module")
def image_pipeline() -> DiTImagePipeline:
    pipeline = DiTImagePipeline(
        tiny_transformer_2d(),
        tiny_image_vae(),
        DDIMScheduler(),
        id2label={i: f"class {i}" for i in range(NUM_CLASSES)},
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def video_pipeline() -> DiTVideoPipeline:
    pipeline = DiTVideoPipeline(tiny_transformer_3d(), tiny_video_vae(), DDIMScheduler(), id2label={0: "a", 1: "b"})
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def generate(pipeline, seed: int = 0, **kwargs):
    kwargs = {
        "class_labels": [0, 4],
        "guidance_scale": 3.0,
        "num_inference_steps": 2,
        "output_type": "np",
        **kwargs,
    }
    return pipeline(generator=torch.Generator().manual_seed(seed), **kwargs)


# ------------------------------------------------------------------------------------------------------ images


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
def test_image_pipeline_shapes_and_range_below_1000_classes(image_pipeline, guidance_scale):
    images = generate(image_pipeline, guidance_scale=guidance_scale, class_labels=[0, 4, 2]).images
    assert images.shape == (3, 8, 8, 3)  # 4x4 latents, AutoencoderKL with a factor-2 decoder
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0


def test_guidance_uses_the_null_class_from_the_config(image_pipeline):
    """With guidance, the unconditional half is conditioned on class ``num_embeds_ada_norm``, not 1000."""
    seen = []
    handle = image_pipeline.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["class_labels"].tolist()), with_kwargs=True
    )
    try:
        generate(image_pipeline, guidance_scale=2.0, class_labels=[1, 3])
    finally:
        handle.remove()
    assert seen and all(labels == [1, 3, NUM_CLASSES, NUM_CLASSES] for labels in seen)
    guided = generate(image_pipeline, guidance_scale=2.0).images
    unguided = generate(image_pipeline, guidance_scale=1.0).images
    assert np.abs(guided - unguided).max() > 1e-3


def test_same_samples_as_stock_dit_pipeline_for_1000_classes():
    """For ImageNet-style 1000-class models the subclass behaves exactly like diffusers' DiTPipeline."""
    transformer, vae = tiny_transformer_2d(num_classes=1000), tiny_image_vae()
    ours = DiTImagePipeline(transformer, vae, DDIMScheduler())
    stock = DiTPipeline(transformer, vae, DDIMScheduler())
    for pipeline in (ours, stock):
        pipeline.set_progress_bar_config(disable=True)
    for guidance_scale in (1.0, 4.0):
        expected = generate(stock, guidance_scale=guidance_scale, class_labels=[7, 999]).images
        actual = generate(ours, guidance_scale=guidance_scale, class_labels=[7, 999]).images
        np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_image_pipeline_save_and_reload(image_pipeline, tmp_path):
    image_pipeline.save_pretrained(tmp_path)
    reloaded = DiffusionPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert type(reloaded) is DiTImagePipeline
    assert reloaded.id2label == image_pipeline.id2label == {i: f"class {i}" for i in range(NUM_CLASSES)}
    assert reloaded.get_label_ids(["class 3"]) == [3]
    np.testing.assert_array_equal(generate(reloaded).images, generate(image_pipeline).images)


def record_step_outputs(pipeline, monkeypatch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The transformer's outputs and what the scheduler steps with."""
    predictions, model_outputs = [], []
    pipeline.transformer.register_forward_hook(
        lambda module, args, kwargs, output: predictions.append(output.sample), with_kwargs=True
    )
    step = pipeline.scheduler.step
    monkeypatch.setattr(
        pipeline.scheduler,
        "step",
        lambda model_output, *args, **kwargs: (
            model_outputs.append(model_output) or step(model_output, *args, **kwargs)
        ),
    )
    return predictions, model_outputs


@pytest.mark.parametrize(
    ("scheduler", "channels_to_scheduler"),
    [(DDPMScheduler(variance_type="learned_range"), 2 * 4), (DDIMScheduler(), 4)],
    ids=["ddpm-learned-range", "ddim"],
)
def test_learned_variance_reaches_a_scheduler_that_uses_it(scheduler, channels_to_scheduler, monkeypatch):
    """The transformer predicts 2c channels (noise, variance); a learned-variance scheduler gets all of them, with
    the variance of the conditional half, and any other scheduler the c noise channels."""
    pipeline = DiTImagePipeline(tiny_transformer_2d(), tiny_image_vae(), scheduler)
    pipeline.set_progress_bar_config(disable=True)
    predictions, model_outputs = record_step_outputs(pipeline, monkeypatch)
    generate(pipeline, seed=5, class_labels=[0, 4], guidance_scale=3.0, num_inference_steps=2)

    assert len(model_outputs) == 2 and all(
        output.shape == (2, channels_to_scheduler, 4, 4) for output in model_outputs
    )
    conditional_variance = predictions[0][:2, 4:]  # the transformer sees [conditional; unconditional] batches
    if channels_to_scheduler == 8:
        torch.testing.assert_close(model_outputs[0][:, 4:], conditional_variance)


@pytest.mark.parametrize(
    ("class_labels", "error", "message"),
    [
        ([0, NUM_CLASSES], ValueError, r"class_labels: expected ids in \[0, 4\].*got 5"),
        ([-1], ValueError, "got -1"),
        ([1.5], TypeError, "class_labels: expected integer class ids, got 1.5"),
        (["3"], TypeError, "class_labels: expected integer"),
        (torch.tensor([0.0, 1.0]), TypeError, "dtype torch.float32"),
        ([], ValueError, "at least one class id"),
    ],
)
def test_image_pipeline_rejects_bad_class_labels(image_pipeline, class_labels, error, message):
    with pytest.raises(error, match=message):
        image_pipeline(class_labels, num_inference_steps=1)


def test_pipelines_reject_mismatched_latent_channels():
    with pytest.raises(ValueError, match="vae: expected an autoencoder with latent_channels=4.*got latent_channels=8"):
        DiTImagePipeline(tiny_transformer_2d(), tiny_image_vae(latent_channels=8), DDIMScheduler())
    with pytest.raises(ValueError, match="latent_channels=4"):
        DiTVideoPipeline(tiny_transformer_3d(in_channels=4), tiny_image_vae(latent_channels=6), DDIMScheduler())


def test_bad_output_type(image_pipeline):
    with pytest.raises(ValueError, match="output_type: expected one of"):
        image_pipeline([0], output_type="latent")


# ------------------------------------------------------------------------------------------------ 3-D DiT


def test_transformer_3d_output_shape_learned_sigma_and_patch_layout():
    transformer = tiny_transformer_3d(patch_size=(1, 2, 2), sample_size=4, num_layers=0)
    transformer.eval()
    latents = torch.randn(2, 4, 3, 4, 6)  # any grid divisible by the patch size
    timestep, labels = torch.tensor([10, 500]), torch.tensor([0, NUM_CLASSES])
    sample = transformer(latents, timestep, labels).sample
    assert sample.shape == (2, 8, 3, 4, 6)
    # Without blocks every output tubelet depends on its own input tubelet only: the (un)patchify is consistent.
    perturbed = latents.clone()
    perturbed[:, :, 1, 3, 5] += 1.0
    changed = (transformer(perturbed, timestep, labels).sample - sample).abs().amax(dim=(0, 1)) > 0
    expected = torch.zeros_like(changed)
    expected[1, 2:4, 4:6] = True
    assert torch.equal(changed, expected)


def test_transformer_3d_zero_init_and_gradient_checkpointing():
    fresh = DiTTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=2)
    assert (
        fresh(torch.randn(1, 4, 2, 2, 2), torch.tensor([3]), torch.tensor([1])).sample.abs().max() == 0
    )  # adaLN-Zero

    transformer = tiny_transformer_3d(num_layers=2)
    block_calls = [0]
    for block in transformer.transformer_blocks:  # a pre-hook: recomputation stops once it has what backward needs
        block.register_forward_pre_hook(lambda *_: block_calls.__setitem__(0, block_calls[0] + 1))
    latents, timestep, labels = torch.randn(2, 4, 2, 2, 2), torch.tensor([1, 2]), torch.tensor([0, 1])
    transformer(latents, timestep, labels).sample.square().mean().backward()
    assert block_calls[0] == 2  # each block once
    plain_grads = [parameter.grad.clone() for parameter in transformer.parameters()]
    transformer.zero_grad()
    transformer.enable_gradient_checkpointing()
    transformer(latents, timestep, labels).sample.square().mean().backward()
    assert block_calls[0] == 2 + 2 * 2  # each block in forward and again (recomputed) in backward
    for plain, checkpointed in zip(plain_grads, (parameter.grad for parameter in transformer.parameters())):
        torch.testing.assert_close(checkpointed, plain)


def test_transformer_3d_rejects_bad_inputs():
    transformer = tiny_transformer_3d(patch_size=(2, 1, 1))
    with pytest.raises(ValueError, match=r"hidden_states: expected \(B, 4, T, H, W\), got \(1, 3, 2, 2, 2\)"):
        transformer(torch.randn(1, 3, 2, 2, 2), torch.tensor([1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="divisible by patch_size"):
        transformer(torch.randn(1, 4, 3, 2, 2), torch.tensor([1]), torch.tensor([0]))
    with pytest.raises(TypeError, match="class_labels: expected an integer tensor"):
        transformer(torch.randn(1, 4, 2, 2, 2), torch.tensor([1]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="num_attention_heads \\* attention_head_dim: expected a multiple of 16"):
        DiTTransformer3DModel(num_attention_heads=3, attention_head_dim=6)


# ---------------------------------------------------------------------------------------------------- videos


@pytest.mark.parametrize("guidance_scale", [1.0, 2.5])
def test_video_pipeline_frames(video_pipeline, guidance_scale):
    frames = generate(video_pipeline, guidance_scale=guidance_scale, class_labels=[1, 0, 4]).frames
    assert frames.shape == (3, 4, 8, 8, 3)  # 2 latent frames x tubelet 2, 2x2 latents x patch 4
    assert frames.min() >= 0 and frames.max() <= 1 and frames.std() > 0
    clips = generate(video_pipeline, guidance_scale=guidance_scale, output_type="pil").frames
    assert len(clips) == 2 and len(clips[0]) == 4 and clips[0][0].size == (8, 8)


def test_video_pipeline_save_and_reload(video_pipeline, tmp_path):
    video_pipeline.save_pretrained(tmp_path)
    reloaded = DiffusionPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert type(reloaded) is DiTVideoPipeline and reloaded.id2label == {0: "a", 1: "b"}
    np.testing.assert_array_equal(generate(reloaded).frames, generate(video_pipeline).frames)


def test_video_pipeline_rejects_out_of_range_classes(video_pipeline):
    with pytest.raises(ValueError, match=r"class_labels: expected ids in \[0, 4\]"):
        video_pipeline([7], num_inference_steps=1)


# ------------------------------------------------------------------------------ guidance interval and rescale


def with_scheduler(pipeline, scheduler):
    """The same transformer and autoencoder with another scheduler."""
    same = type(pipeline)(pipeline.transformer, pipeline.vae, scheduler, id2label=pipeline.id2label)
    same.set_progress_bar_config(disable=True)
    return same


def record_transformer_calls(transformer) -> tuple[list[tuple[float, int]], torch.utils.hooks.RemovableHandle]:
    """(timestep, batch size) of every forward call."""
    calls = []
    handle = transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((float(kwargs["timestep"][0]), args[0].shape[0])), with_kwargs=True
    )
    return calls, handle


def output_of(pipeline, result):
    return result.frames if isinstance(pipeline, DiTVideoPipeline) else result.images


SCHEDULERS = {
    "ddim": DDIMScheduler,
    "ddpm-learned-range": lambda: DDPMScheduler(variance_type="learned_range"),  # ancestral: uses the generator
    "flow-euler": lambda: FlowMatchEulerDiscreteScheduler(shift=3.0),
}


@pytest.mark.parametrize("scheduler_name", SCHEDULERS)
@pytest.mark.parametrize("pipeline_name", ["image_pipeline", "video_pipeline"])
@pytest.mark.parametrize("interval", [(0.5, 0.5), (0.0, 0.0), (1.0, 1.0)])
def test_empty_guidance_interval_is_exactly_unguided(request, pipeline_name, scheduler_name, interval):
    pipeline = with_scheduler(request.getfixturevalue(pipeline_name), SCHEDULERS[scheduler_name]())
    unguided = output_of(pipeline, generate(pipeline, guidance_scale=1.0, num_inference_steps=3))
    calls, handle = record_transformer_calls(pipeline.transformer)
    try:
        empty = output_of(pipeline, generate(pipeline, guidance_interval=interval, num_inference_steps=3))
    finally:
        handle.remove()
    assert [batch for _, batch in calls] == [2, 2, 2]  # no unconditional pass
    assert np.array_equal(empty, unguided)
    assert not np.array_equal(output_of(pipeline, generate(pipeline, num_inference_steps=3)), unguided)


@pytest.mark.parametrize(
    "scheduler_name, interval, expected_batches",
    [
        # flow Euler, shift 1: timesteps 1000, 667, 334, 1, i.e. trajectory positions 0, 0.333, 0.666, 0.999
        ("flow-euler-shift-1", (0.3, 0.7), [2, 4, 4, 2]),
        ("flow-euler-shift-1", (0.0, 0.3), [4, 2, 2, 2]),
        # DDIM ("leading"): timesteps 750, 500, 250, 0, i.e. positions 0.25, 0.5, 0.75, 1; an end of 1 includes 1
        ("ddim", (0.5, 1.0), [2, 4, 4, 4]),
        ("ddim", (0.0, 0.75), [4, 4, 2, 2]),
        ("ddim", (0.0, 1.0), [4, 4, 4, 4]),
    ],
)
def test_guidance_applies_inside_the_interval_only(image_pipeline, scheduler_name, interval, expected_batches):
    scheduler = FlowMatchEulerDiscreteScheduler() if scheduler_name == "flow-euler-shift-1" else DDIMScheduler()
    pipeline = with_scheduler(image_pipeline, scheduler)
    calls, handle = record_transformer_calls(pipeline.transformer)
    try:
        limited = generate(pipeline, guidance_interval=interval, num_inference_steps=4).images
    finally:
        handle.remove()
    positions = [1 - timestep / 1000 for timestep, _ in calls]
    assert [batch for _, batch in calls] == expected_batches, positions
    full = generate(pipeline, num_inference_steps=4).images
    unguided = generate(pipeline, guidance_scale=1.0, num_inference_steps=4).images
    if expected_batches == [4, 4, 4, 4]:
        np.testing.assert_array_equal(limited, full)  # (0, 1) is the default: guidance everywhere
    else:
        assert np.abs(limited - full).max() > 1e-4 and np.abs(limited - unguided).max() > 1e-4


@pytest.mark.parametrize("scheduler_name", ["ddim", "flow-euler"])
@pytest.mark.parametrize("make_transformer", [tiny_transformer_2d, tiny_transformer_3d])
@pytest.mark.parametrize("guidance_rescale", [0.7, 1.0])
def test_guidance_rescale_matches_lin_et_al(scheduler_name, make_transformer, guidance_rescale, monkeypatch):
    """phi * cfg * std(cond) / std(cfg) + (1 - phi) * cfg, stds per sample (Lin et al. 2023, Eq. 15-16)."""
    pipeline_class = DiTImagePipeline if make_transformer is tiny_transformer_2d else DiTVideoPipeline
    vae = tiny_image_vae() if make_transformer is tiny_transformer_2d else tiny_video_vae()
    pipeline = pipeline_class(make_transformer(), vae, SCHEDULERS[scheduler_name]())
    pipeline.set_progress_bar_config(disable=True)
    predictions, model_outputs = record_step_outputs(pipeline, monkeypatch)
    generate(pipeline, guidance_scale=3.0, guidance_rescale=guidance_rescale, num_inference_steps=2)

    assert len(model_outputs) == len(predictions) == 2
    for prediction, model_output in zip(predictions, model_outputs):
        cond, uncond = prediction[:, :4].chunk(2)
        guided = uncond + 3.0 * (cond - uncond)
        dims = tuple(range(1, cond.ndim))
        rescaled = guided * cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)
        expected = guidance_rescale * rescaled + (1 - guidance_rescale) * guided
        torch.testing.assert_close(model_output, expected)
        if guidance_rescale == 1.0:
            torch.testing.assert_close(model_output.std(dim=dims), cond.std(dim=dims))


def test_no_guidance_rescale_is_plain_guidance(image_pipeline):
    np.testing.assert_array_equal(
        generate(image_pipeline, guidance_rescale=0.0).images, generate(image_pipeline).images
    )
    assert np.abs(generate(image_pipeline, guidance_rescale=0.5).images - generate(image_pipeline).images).max() > 0


# --------------------------------------------------------------------------------------------- flow matching


@pytest.mark.parametrize("pipeline_class", [DiTImagePipeline, DiTVideoPipeline])
def test_flow_matching_pipeline_samples_saves_and_reloads(pipeline_class, tmp_path):
    """A velocity transformer (c output channels) with a flow-matching scheduler, as train_dit.py saves it."""
    if pipeline_class is DiTImagePipeline:
        transformer, vae = tiny_transformer_2d(), tiny_image_vae()
        transformer = DiTTransformer2DModel.from_config(transformer.config, out_channels=4)
    else:
        transformer, vae = tiny_transformer_3d(out_channels=4), tiny_video_vae()
    randomize(transformer)
    pipeline = pipeline_class(transformer.eval(), vae, FlowMatchEulerDiscreteScheduler(shift=2.0), id2label={0: "a"})
    pipeline.set_progress_bar_config(disable=True)
    samples = output_of(pipeline, generate(pipeline, guidance_interval=(0.2, 0.9), guidance_rescale=0.5))
    assert np.isfinite(samples).all() and samples.min() >= 0 and samples.max() <= 1 and samples.std() > 0

    pipeline.save_pretrained(tmp_path)
    reloaded = DiffusionPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert type(reloaded.scheduler) is FlowMatchEulerDiscreteScheduler and reloaded.scheduler.config.shift == 2.0
    reloaded_samples = output_of(reloaded, generate(reloaded, guidance_interval=(0.2, 0.9), guidance_rescale=0.5))
    np.testing.assert_array_equal(reloaded_samples, samples)


# ------------------------------------------------------------------------------- inputs that would mislead


def test_a_non_finite_result_warns_and_names_guidance_scale(image_pipeline, video_pipeline):
    with pytest.warns(RuntimeWarning, match=r"non-finite latent values.*guidance_scale=1e\+30"):
        generate(image_pipeline, guidance_scale=1e30)
    # The video pipeline's sampling warns the same way (AutoencoderViTok then refuses to decode the latents).
    noise = torch.randn(1, 4, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match=r"guidance_scale=1e\+30"):
        video_pipeline.denoise(noise, torch.tensor([1]), 1e30, 2, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert np.isfinite(generate(image_pipeline, guidance_scale=4.0).images).all()
        assert np.isfinite(generate(video_pipeline, guidance_scale=4.0).frames).all()


@pytest.mark.parametrize(
    ("id2label", "error", "message"),
    [
        ({0: "a", NUM_CLASSES: "null"}, ValueError, r"id2label: expected class ids in \[0, 4\].*got 5"),
        ({-1: "a"}, ValueError, "id2label: expected class ids in"),
        ({0: 3}, TypeError, "id2label: expected a string name for class 0, got 3"),
        ({"zero": "a"}, TypeError, "id2label: expected integer class ids as keys, got 'zero'"),
        (["a", "b"], TypeError, "id2label: expected a mapping"),
    ],
)
@pytest.mark.parametrize("pipeline_class", [DiTImagePipeline, DiTVideoPipeline])
def test_pipelines_reject_labels_the_transformer_cannot_generate(pipeline_class, id2label, error, message):
    transformer, vae = (
        (tiny_transformer_2d(), tiny_image_vae())
        if pipeline_class is DiTImagePipeline
        else (tiny_transformer_3d(), tiny_video_vae())
    )
    with pytest.raises(error, match=message):
        pipeline_class(transformer, vae, DDIMScheduler(), id2label=id2label)


@pytest.mark.parametrize("pipeline_name", ["image_pipeline", "video_pipeline"])
def test_the_null_class_cannot_be_requested(request, pipeline_name):
    pipeline = request.getfixturevalue(pipeline_name)
    with pytest.raises(
        ValueError, match=rf"class_labels: expected ids in \[0, {NUM_CLASSES - 1}\].*got {NUM_CLASSES}"
    ):
        pipeline(torch.tensor([0, NUM_CLASSES]), num_inference_steps=1)
