"""ViTok-v2 as a configuration of AutoencoderViTok: presets, loader, reference vectors of the official code."""

import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_compact.vitok import AutoencoderViTok, load_vitok_v2
from hf_compact.vitok.convert_vitok_v2 import main, resolve_v2_config
from hf_compact.vitok.presets import V2_VARIANTS, VITOK_PRESETS

DATA = Path(__file__).parents[1] / "data" / "vitok_v2"
REFERENCE_VARIANT = json.loads((DATA / "case.json").read_text())["variant"]  # Bd2w128h2-Bd3w128h2/1x8x4
SIZES = ("64x64", "40x72", "24x32")

# vitok-v2.md §1: (encoder params, decoder params) computed from the official module definitions.
V2_COUNTS = {
    "v2-350M-f16x16": (51_209_744, 303_239_936),
    "v2-350M-f16x32": (51_226_144, 303_256_320),
    "v2-350M-f16x64": (51_258_944, 303_289_088),
    "v2-5B-f16x16": (456_011_792, 4_538_414_848),
    "v2-5B-f16x32": (456_060_960, 4_538_464_000),
    "v2-5B-f16x64": (456_159_296, 4_538_562_304),
    "v2-5B-f32x64": (463_237_184, 4_545_642_496),
    "v2-5B-f32x128": (463_433_856, 4_545_839_104),
    "v2-5B-f32x256": (463_827_200, 4_546_232_320),
}


@pytest.fixture(scope="module")
def reference():
    return load_file(DATA / "reference_io.safetensors")


@pytest.fixture(scope="module")
def reference_model():
    return load_vitok_v2(DATA, variant=REFERENCE_VARIANT)


@pytest.mark.parametrize("name", sorted(V2_COUNTS))
def test_v2_preset_parameter_counts(name):
    with torch.device("meta"):
        model = AutoencoderViTok.from_preset(name)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert (count(model.encoder), count(model.decoder)) == V2_COUNTS[name]
    assert model.config.latent_type == "deterministic" and model.config.rope_type == "2d"


@pytest.mark.parametrize("size", SIZES)
def test_float32_matches_official_reference(reference_model, reference, size):
    image = reference[f"{size}.image"]
    with torch.no_grad():
        posterior = reference_model.encode(image).latent_dist
        latent = posterior.sample()  # deterministic: the sample is the latent itself
        recon = reference_model.decode(latent).sample
    assert posterior.deterministic
    torch.testing.assert_close(latent, reference[f"{size}.latent"], atol=1e-4, rtol=0)
    torch.testing.assert_close(recon, reference[f"{size}.recon"], atol=1e-4, rtol=0)
    # the latent norm standardises each token over its channels
    torch.testing.assert_close(latent.mean(1), torch.zeros_like(latent.mean(1)), atol=1e-5, rtol=0)


def test_bfloat16_within_official_bf16_spread(reference):
    model = load_vitok_v2(DATA, variant=REFERENCE_VARIANT, torch_dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    for size in SIZES:
        with torch.no_grad():
            latent = model.encode(reference[f"{size}.image"].bfloat16()).latent_dist.mode()
            recon = model.decode(latent).sample
        assert recon.dtype == torch.bfloat16
        # vitok-v2.md §5: official bf16 vs fp32 spread max |dz| ~0.03, max |dx| ~0.02, mean |dx| ~0.0035
        assert (latent.float() - reference[f"{size}.latent"]).abs().max() < 0.06
        recon_error = (recon.float() - reference[f"{size}.recon"]).abs()
        assert recon_error.max() < 0.04 and recon_error.mean() < 0.0035


def test_encoder_only_and_decoder_only_loading(reference):
    image, latent = reference["40x72.image"], reference["40x72.latent"]
    encoder_only = load_vitok_v2(DATA, variant=REFERENCE_VARIANT, components=("encoder",))
    assert all(p.is_meta for p in encoder_only.decoder.parameters())
    with torch.no_grad():
        torch.testing.assert_close(encoder_only.encode(image).latent_dist.mode(), latent, atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="loaded without the decoder"):
        encoder_only.decode(latent)
    decoder_only = load_vitok_v2(DATA, variant=REFERENCE_VARIANT, components=["decoder"])
    assert all(p.is_meta for p in decoder_only.encoder.parameters())
    with torch.no_grad():
        torch.testing.assert_close(decoder_only.decode(latent).sample, reference["40x72.recon"], atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="loaded without the encoder"):
        decoder_only.encode(image)


def test_variant_inferred_from_repo_name():
    name, config = resolve_v2_config("philippehansen/ViTok-v2-350M-f16x16")
    assert name == "v2-350M-f16x16" and config == VITOK_PRESETS["v2-350M-f16x16"]
    assert resolve_v2_config("/models/vitok-v2-5b-f32x256")[0] == "v2-5B-f32x256"
    assert resolve_v2_config("anything", "Ld4-Ld24/1x16x16")[1] == VITOK_PRESETS["v2-350M-f16x16"]
    assert len(V2_VARIANTS) == 9


def random_published_files(folder: Path, variant: str = "Bd1w64h2-Bd2w64h2/1x4x8", seed: int = 0) -> dict:
    """Writes random encoder/decoder files with the published key layout (vitok-v2.md §6) for ``variant``."""
    width, hd, p, c, hidden = 64, 32, 4, 8, 16 * ((int(64 * 2.67) + 8) // 16)
    generator = torch.Generator().manual_seed(seed)

    def block_shapes(prefix):
        return {
            f"{prefix}.norm1.weight": (width,),
            f"{prefix}.attn.norm_q.weight": (hd,),
            f"{prefix}.attn.norm_k.weight": (hd,),
            f"{prefix}.attn.qkv_proj.weight": (3 * width, width),
            f"{prefix}.attn.out_proj.weight": (width, width),
            f"{prefix}.ffn.fc1.weight": (2 * hidden, width),
            f"{prefix}.ffn.fc2.weight": (width, hidden),
            f"{prefix}.layer_scale.gamma": (width,),
        }

    encoder = {
        "patch_embed.weight": (width, 3 * p * p),
        "patch_embed.bias": (width,),
        **block_shapes("encoder_blocks.0"),
    }
    encoder.update({"to_code.weight": (c, width), "to_code.bias": (c,)})
    decoder = {"decoder_embed.weight": (width, c), "decoder_embed.bias": (width,)}
    for n in range(2):
        decoder.update(block_shapes(f"decoder_blocks.{n}"))
    decoder.update({"to_pixels.weight": (3 * p * p, width), "to_pixels.bias": (3 * p * p,)})
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, shapes in (("encoder", encoder), ("decoder", decoder)):
        files[name] = {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}
        save_file(files[name], folder / f"{name}.safetensors")
    return files


def test_random_published_layout_round_trips_through_loader_and_cli(tmp_path):
    variant = "Bd1w64h2-Bd2w64h2/1x4x8"
    files = random_published_files(tmp_path / "official")
    model = load_vitok_v2(tmp_path / "official", variant=variant)
    state = model.state_dict()
    assert len(state) == len(files["encoder"]) + len(files["decoder"])
    torch.testing.assert_close(state["encoder.patch_embed.proj.weight"], files["encoder"]["patch_embed.weight"])
    torch.testing.assert_close(
        state["decoder.transformer.blocks.1.mlp.in_proj.weight"],
        files["decoder"]["decoder_blocks.1.ffn.fc1.weight"],
    )
    torch.testing.assert_close(
        state["encoder.transformer.blocks.0.attn.proj.weight"],
        files["encoder"]["encoder_blocks.0.attn.out_proj.weight"],
    )
    torch.testing.assert_close(state["decoder.to_pixels.proj.bias"], files["decoder"]["to_pixels.bias"])

    main(
        [
            "--source",
            str(tmp_path / "official"),
            "--variant",
            variant,
            "--output",
            str(tmp_path / "diffusers"),
        ]
    )
    reloaded = AutoencoderViTok.from_pretrained(tmp_path / "diffusers")
    image = torch.rand(1, 3, 8, 12) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(reloaded(image).sample, model(image).sample, rtol=0, atol=0)

    # raw training-checkpoint spelling (``_orig_mod.`` prefix, ``encoder.N.``) loads to the same weights
    raw = tmp_path / "raw"
    shutil.copytree(tmp_path / "official", raw)
    save_file(
        {"_orig_mod." + k.replace("encoder_blocks.", "encoder."): v for k, v in files["encoder"].items()},
        raw / "encoder.safetensors",
    )
    torch.testing.assert_close(load_vitok_v2(raw, variant=variant).state_dict(), state)


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda folder: (folder / "decoder.safetensors").unlink(), "has no decoder.safetensors; expected"),
        (
            lambda folder: (folder / "encoder.safetensors").write_bytes(b"not safetensors"),
            "not a readable safetensors",
        ),
        (
            lambda folder: save_file(
                {**load_file(folder / "encoder.safetensors"), "encoder_blocks.0.attn.bias": torch.zeros(3)},
                folder / "encoder.safetensors",
            ),
            r"unexpected keys: encoder\.transformer\.blocks\.0\.attn\.bias",
        ),
        (
            lambda folder: save_file(
                {k: v for k, v in load_file(folder / "decoder.safetensors").items() if k != "to_pixels.bias"},
                folder / "decoder.safetensors",
            ),
            r"missing keys: decoder\.to_pixels\.proj\.bias",
        ),
        (
            lambda folder: save_file(
                {**load_file(folder / "encoder.safetensors"), "to_code.weight": torch.zeros(4, 64)},
                folder / "encoder.safetensors",
            ),
            r"mis-shaped keys: encoder\.to_latent\.weight: expected \(8, 64\), got \(4, 64\)",
        ),
    ],
)
def test_bad_folders(tmp_path, corrupt, match):
    random_published_files(tmp_path)
    corrupt(tmp_path)
    with pytest.raises(ValueError, match=match):
        load_vitok_v2(tmp_path, variant="Bd1w64h2-Bd2w64h2/1x4x8")


def test_bad_variants_components_and_unreachable_repo(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="cannot infer the ViTok-v2 variant"):
        load_vitok_v2(DATA)
    with pytest.raises(ValueError, match="unknown ViTok-v2 variant 'v2-1B-f16x16'"):
        load_vitok_v2(DATA, variant="v2-1B-f16x16")
    with pytest.raises(ValueError, match="cannot parse 'Qd4'"):
        load_vitok_v2(DATA, variant="Qd4-L/1x16x16")
    with pytest.raises(ValueError, match="components must be a non-empty subset"):
        load_vitok_v2(DATA, variant=REFERENCE_VARIANT, components=("vae",))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="neither a local folder nor a Hub repo .* encoder.safetensors"):
        load_vitok_v2("philippehansen/ViTok-v2-350M-f16x16", components=("encoder",), cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["350M-f16x16", "350m-F16x16", "v2-350M-f16x16", "ViTok-v2-350M-f16x16"])
def test_official_registry_names_resolve(name):
    from hf_compact.vitok.convert_vitok_v2 import resolve_v2_source

    assert resolve_v2_config("anything", name) == ("v2-350M-f16x16", VITOK_PRESETS["v2-350M-f16x16"])
    assert resolve_v2_config(name)[0] == "v2-350M-f16x16"
    assert resolve_v2_source(name) == "philippehansen/ViTok-v2-350M-f16x16"


def test_load_vitok_v2_takes_a_registry_name(monkeypatch):
    """`load_vitok_v2("350M-f16x16")` fetches philippehansen/ViTok-v2-350M-f16x16, as the official registry does."""
    requested = []

    def fake_download(repo_id, filename, **kwargs):
        requested.append((repo_id, filename))
        raise huggingface_hub.errors.OfflineModeIsEnabled("offline test")

    monkeypatch.setattr("hf_compact.vitok.convert_vitok_v2.hf_hub_download", fake_download)
    with pytest.raises(ValueError, match="philippehansen/ViTok-v2-350M-f16x16"):
        load_vitok_v2("350M-f16x16")
    assert requested == [("philippehansen/ViTok-v2-350M-f16x16", "encoder.safetensors")]
    with pytest.raises(ValueError, match="unknown ViTok-v2 variant '999M-f16x16'"):
        resolve_v2_config("anything", "999M-f16x16")
