"""AutoencoderViTok (ViTok-v1): shapes, presets, AutoencoderKL API, diffusers integration, bad input."""

import json

import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DiTPipeline, DiTTransformer2DModel
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

import hf_compact  # noqa: F401  (makes the vae module importable for DiffusionPipeline.from_pretrained)
from hf_compact.vitok import VITOK_PRESETS, AutoencoderViTok, compute_latent_std
from hf_compact.vitok.tiling import blend

TINY = dict(
    latent_channels=4,
    patch_size=4,
    encoder_width=32,
    encoder_depth=1,
    encoder_heads=2,
    decoder_width=48,
    decoder_depth=2,
    decoder_heads=2,
    sample_size=16,
)


def tiny_vitok(**overrides) -> AutoencoderViTok:
    torch.manual_seed(0)
    return AutoencoderViTok(**{**TINY, **overrides}).eval()


def pixels(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "name, encoder_params, decoder_params, paper_total",
    [("S-B/16", 43_163_960, 85_698_867, 128.86e6), ("S-L/16", 43_163_960, 383_674_899, 426.84e6)],
)
def test_v1_preset_parameter_counts(name, encoder_params, decoder_params, paper_total):
    with torch.device("meta"):
        model = AutoencoderViTok.from_preset(name)
    assert (count(model.encoder), count(model.decoder)) == (encoder_params, decoder_params)
    assert abs(count(model) - paper_total) / paper_total < 1e-3


def test_video_presets_strides():
    for name, (q, p) in {"S-B/4x8": (4, 8), "S-B/8x8": (8, 8), "S-B/4x16": (4, 16)}.items():
        assert (VITOK_PRESETS[name]["tubelet_size"], VITOK_PRESETS[name]["patch_size"]) == (q, p)
    with pytest.raises(ValueError, match="S-B/16"):
        AutoencoderViTok.from_preset("S-XL/16")


def test_image_and_video_shapes():
    model = tiny_vitok()
    with torch.no_grad():
        posterior = model.encode(pixels(2, 3, 16, 24)).latent_dist
        assert isinstance(posterior, DiagonalGaussianDistribution)
        assert posterior.mean.shape == (2, 4, 4, 6)
        assert model(pixels(2, 3, 16, 24)).sample.shape == (2, 3, 16, 24)
    video_model = tiny_vitok(tubelet_size=2)
    with torch.no_grad():
        assert video_model.encode(pixels(1, 3, 4, 8, 12)).latent_dist.mean.shape == (1, 4, 2, 2, 3)
        assert video_model(pixels(1, 3, 4, 8, 12)).sample.shape == (1, 3, 4, 8, 12)


@pytest.mark.parametrize("rope_type", ["1d", "axial"])
def test_latent_grid_is_raster_token_order(rope_type):
    model = tiny_vitok(tubelet_size=2, rope_type=rope_type, mlp_type="geglu")
    video = pixels(1, 3, 4, 8, 12)
    with torch.no_grad():
        tokens = model.encoder(video, (2, 2, 3))  # (B, N, 2c)
        grid = model.encode(video).latent_dist.parameters  # (B, 2c, t, h, w)
    for n in range(tokens.shape[1]):
        t, rest = divmod(n, 2 * 3)
        h, w = divmod(rest, 3)
        torch.testing.assert_close(grid[0, :, t, h, w], tokens[0, n])


def test_reconstruction_is_deterministic_without_sampling():
    model = tiny_vitok()
    x = pixels(2, 3, 16, 16)
    with torch.no_grad():
        first, second = model(x).sample, model(x, sample_posterior=False).sample
        from_mode = model.decode(model.encode(x).latent_dist.mode()).sample
        sampled = model(x, sample_posterior=True, generator=torch.Generator().manual_seed(1)).sample
        resampled = model(x, sample_posterior=True, generator=torch.Generator().manual_seed(1)).sample
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first, from_mode, rtol=0, atol=0)
    torch.testing.assert_close(sampled, resampled, rtol=0, atol=0)
    assert not torch.allclose(sampled, first)
    assert model(x, return_dict=False)[0].shape == x.shape


def test_slicing_matches_plain_path():
    model = tiny_vitok()
    x = pixels(3, 3, 16, 16)
    with torch.no_grad():
        plain_latent = model.encode(x).latent_dist.mean
        plain_recon = model.decode(plain_latent).sample
        model.enable_slicing()
        torch.testing.assert_close(model.encode(x).latent_dist.mean, plain_latent, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(model.decode(plain_latent).sample, plain_recon, atol=1e-6, rtol=1e-5)


def test_tiling_blends_tiles_and_matches_plain_path_away_from_seams():
    # Near-local model (ViTok-v2 blocks with LayerScale 1e-4): tiles see almost the same function as the full
    # image, so tiled and plain outputs must agree where no seam blending happens.
    from hf_compact.vitok.presets import V2_ARCHITECTURE

    model = tiny_vitok(**V2_ARCHITECTURE)
    x = pixels(1, 3, 40, 40)  # tile 16 px, stride 12 px
    with torch.no_grad():
        plain_latent = model.encode(x).latent_dist.mode()
        plain_recon = model.decode(plain_latent).sample
        model.enable_tiling()
        tiled_latent = model.encode(x).latent_dist.mode()
        tiled_recon = model.decode(plain_latent).sample
    assert tiled_latent.shape == plain_latent.shape and tiled_recon.shape == plain_recon.shape
    torch.testing.assert_close(tiled_latent[..., :3, :3], plain_latent[..., :3, :3], atol=2e-3, rtol=0)
    torch.testing.assert_close(tiled_recon[..., :12, :12], plain_recon[..., :12, :12], atol=2e-3, rtol=0)
    torch.testing.assert_close(tiled_recon, plain_recon, atol=2e-3, rtol=0)
    torch.testing.assert_close(tiled_latent, plain_latent, atol=2e-3, rtol=0)
    # A global-attention v1 model runs tiled as well and keeps the shapes.
    v1 = tiny_vitok()
    v1.enable_tiling()
    with torch.no_grad():
        assert v1(x).sample.shape == x.shape


def test_blend_cross_fades_linearly():
    previous, current = torch.zeros(1, 6), torch.ones(1, 6)
    blended = blend(previous, current, extent=4, dim=-1)
    torch.testing.assert_close(blended, torch.tensor([[0.0, 0.25, 0.5, 0.75, 1.0, 1.0]]))


def test_gradient_checkpointing_gives_same_gradients():
    model = tiny_vitok().train()
    x = pixels(2, 3, 8, 8)

    def gradients():
        model.zero_grad()
        model(x).sample.square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    reference = gradients()
    model.enable_gradient_checkpointing()
    assert all(block.gradient_checkpointing for block in model.encoder.transformer.blocks)
    for expected, got in zip(reference, gradients()):
        torch.testing.assert_close(got, expected)


def test_save_load_round_trip_and_bfloat16(tmp_path):
    model = tiny_vitok(rope_type="1d", mlp_type="geglu", scaling_factor=0.5)
    model.save_pretrained(tmp_path)
    reloaded = AutoencoderViTok.from_pretrained(tmp_path).eval()
    assert reloaded.config.scaling_factor == 0.5 and reloaded.config.mlp_type == "geglu"
    x = pixels(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).sample, model(x).sample, rtol=0, atol=0)
    half = AutoencoderViTok.from_pretrained(tmp_path, torch_dtype=torch.bfloat16).eval()
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())
    with torch.no_grad():
        out = half(x.bfloat16()).sample
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), model(x).sample, atol=0.1, rtol=0)


def test_compute_latent_std():
    model = tiny_vitok()
    batches = [pixels(2, 3, 8, 8, seed=s) for s in range(3)]
    with torch.no_grad():
        means = torch.cat([model.encode(b).latent_dist.mode() for b in batches])
    std = compute_latent_std(model, ({"pixel_values": b} for b in batches), sample_posterior=False)
    assert std == pytest.approx(means.double().std().item(), rel=1e-6)
    assert compute_latent_std(model, batches, max_batches=1, show_progress=False) > 0
    with pytest.raises(ValueError, match="input_key='pixel_values', got keys \\['image'\\]"):
        compute_latent_std(model, [{"image": batches[0]}], input_key="pixel_values")


def tiny_dit_pipeline(vae):
    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=vae.config.latent_channels,
        out_channels=2 * vae.config.latent_channels,
        num_layers=1,
        sample_size=4,
        patch_size=1,
        norm_num_groups=1,
        num_embeds_ada_norm=1000,
    )
    return DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler())


def test_dit_pipeline_generates_and_reloads_identically(tmp_path):
    pipe = tiny_dit_pipeline(tiny_vitok())
    images = pipe([1, 2], num_inference_steps=2, guidance_scale=1.5, output_type="np").images
    assert images.shape == (2, 16, 16, 3) and images.min() >= 0 and images.max() <= 1
    images = pipe([1, 2], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").images
    pipe.save_pretrained(tmp_path)
    model_index = json.loads((tmp_path / "model_index.json").read_text())
    assert model_index["vae"] == ["hf_compact.vitok.autoencoder_vitok", "AutoencoderViTok"]
    reloaded = DiffusionPipeline.from_pretrained(tmp_path)
    assert isinstance(reloaded.vae, AutoencoderViTok)
    again = reloaded(
        [1, 2], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np"
    ).images
    assert (again == images).all()


@pytest.mark.parametrize(
    "make_input, error, match",
    [
        (lambda: pixels(1, 4, 16, 16), ValueError, "3 channels .* got 4"),
        (lambda: pixels(1, 3, 18, 16), ValueError, "divisible by patch_size=4, got 18x16"),
        (lambda: pixels(1, 3, 16), ValueError, r"\(B, C, H, W\).*got shape \(1, 3, 16\)"),
        (lambda: torch.zeros(1, 3, 16, 16, dtype=torch.uint8), TypeError, "floating-point.*uint8"),
        (lambda: [[0.0]], TypeError, "torch.Tensor.*list"),
    ],
)
def test_encode_bad_input(make_input, error, match):
    with pytest.raises(error, match=match):
        tiny_vitok().encode(make_input())


def test_video_bad_input_and_range_warning():
    video_model = tiny_vitok(tubelet_size=2)
    with pytest.raises(ValueError, match="tubelet_size=2 needs videos"):
        video_model.encode(pixels(1, 3, 8, 8))
    with pytest.raises(ValueError, match="divisible by tubelet_size=2, got T=3"):
        video_model.encode(pixels(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="tubelet_size=2 decodes"):
        video_model.decode(torch.zeros(1, 4, 2, 2))
    with pytest.warns(UserWarning, match=r"\[-1, 1\]"):
        tiny_vitok().encode(pixels(1, 3, 8, 8) * 127.5 + 127.5)


@pytest.mark.parametrize(
    "latents, error, match",
    [
        (torch.zeros(1, 5, 2, 2), ValueError, "latent_channels=4 .* got 5"),
        (torch.zeros(1, 4, 2), ValueError, r"latent grid, got shape \(1, 4, 2\)"),
        (torch.zeros(1, 4, 2, 2, dtype=torch.long), TypeError, "floating-point.*int64"),
    ],
)
def test_decode_bad_input(latents, error, match):
    with pytest.raises(error, match=match):
        tiny_vitok().decode(latents)


def test_bad_config_values():
    for key, value in [
        ("rope_type", "3d"),
        ("mlp_type", "relu"),
        ("latent_type", "vq"),
        ("patch_embed_type", "x"),
    ]:
        with pytest.raises(ValueError, match=key):
            tiny_vitok(**{key: value})


def test_empty_batch_gives_empty_latents_and_pixels():
    vae = tiny_vitok()
    with torch.no_grad():
        latents = vae.encode(pixels(0, 3, 16, 16)).latent_dist.mode()
        assert latents.shape == (0, 4, 4, 4)
        assert vae.decode(latents).sample.shape == (0, 3, 16, 16)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixels_and_latents_are_refused(bad_value):
    vae = tiny_vitok()
    sample = pixels(2, 3, 16, 16)
    sample[1, 2, 3, 4] = bad_value
    with pytest.raises(ValueError, match=r"sample: expected finite values, got 1 NaN or infinite of 1536"):
        vae.encode(sample)
    with pytest.raises(ValueError, match="sample: expected finite values"):
        vae(sample)
    latents = torch.zeros(1, 4, 4, 4)
    latents[0, 0, 0, 0] = bad_value
    with pytest.raises(ValueError, match=r"z: expected finite values, got 1 NaN or infinite of 64"):
        vae.decode(latents)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_input_dtype_other_than_the_model_dtype_is_named(dtype):
    vae = tiny_vitok()
    with pytest.raises(TypeError, match=rf"sample: expected a torch.float32 tensor .* got {dtype}"):
        vae.encode(pixels(1, 3, 16, 16).to(dtype))
    with pytest.raises(TypeError, match=rf"z: expected a torch.float32 tensor .* got {dtype}"):
        vae.decode(torch.zeros(1, 4, 4, 4, dtype=dtype))
    half = tiny_vitok().to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"sample: expected a torch.bfloat16 tensor .* got torch.float32"):
        half.encode(pixels(1, 3, 16, 16))


def test_autocast_decides_the_compute_dtype():
    vae = tiny_vitok()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        latents = vae.encode(pixels(1, 3, 16, 16).bfloat16()).latent_dist.mode()
        assert vae.decode(latents).sample.shape == (1, 3, 16, 16)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"encoder_heads": 3}, ValueError, r"encoder_heads: expected a divisor of encoder_width=32, got 3"),
        ({"decoder_heads": 5}, ValueError, r"decoder_heads: expected a divisor of decoder_width=48, got 5"),
        ({"encoder_width": 36, "encoder_heads": 4}, ValueError, r"encoder_width / encoder_heads: the head dim 9"),
        ({"encoder_depth": -1}, ValueError, r"encoder_depth: expected an int >= 0, got -1"),
        ({"decoder_width": "32"}, TypeError, r"decoder_width: expected an int, got '32' \(str\)"),
        ({"encoder_width": 32.0}, TypeError, r"encoder_width: expected an int, got 32.0 \(float\)"),
        ({"patch_size": 0}, ValueError, r"patch_size: expected an int >= 1, got 0"),
        ({"latent_channels": True}, TypeError, r"latent_channels: expected an int, got True"),
        ({"mlp_ratio": -1.0}, ValueError, r"mlp_ratio: expected a finite number > 0, got -1.0"),
        ({"scaling_factor": float("nan")}, ValueError, r"scaling_factor: expected a finite number > 0"),
        ({"qk_norm": "batch"}, ValueError, r"qk_norm: expected one of \(None, 'layer', 'rms'\), got 'batch'"),
        ({"final_norm": "yes"}, TypeError, r"final_norm: expected True or False, got 'yes'"),
    ],
)
def test_config_fields_are_checked_where_the_config_is_built(overrides, error, match):
    with pytest.raises(error, match=match):
        tiny_vitok(**overrides)
