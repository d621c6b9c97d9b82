"""DiTImagePipeline (guidance for any class count, saved id2label), DiTTransformer3DModel and DiTVideoPipeline."""

from __future__ import annotations

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
)

import hf_compact
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


@pytest.mark.parametrize(
    ("scheduler", "channels_to_scheduler"),
    [(DDPMScheduler(variance_type="learned_range"), 2 * 4), (DDIMScheduler(), 4)],
    ids=["ddpm-learned-range", "ddim"],
)
def test_learned_variance_reaches_a_scheduler_that_uses_it(scheduler, channels_to_scheduler, monkeypatch):
    """The transformer predicts 2c channels (noise, variance); a learned-variance scheduler gets all of them, with
    the variance of the conditional half, and any other scheduler the c noise channels."""
    transformer = tiny_transformer_2d()
    pipeline = DiTImagePipeline(transformer, tiny_image_vae(), scheduler)
    pipeline.set_progress_bar_config(disable=True)
    predictions, model_outputs = [], []
    transformer.register_forward_hook(
        lambda module, args, kwargs, output: predictions.append(output.sample), with_kwargs=True
    )
    step = scheduler.step
    monkeypatch.setattr(
        scheduler,
        "step",
        lambda model_output, *args, **kwargs: (
            model_outputs.append(model_output) or step(model_output, *args, **kwargs)
        ),
    )
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


def test_pipelines_are_registered_with_diffusers():
    import diffusers

    assert diffusers.DiTImagePipeline is hf_compact.DiTImagePipeline
    assert diffusers.DiTVideoPipeline is hf_compact.DiTVideoPipeline
