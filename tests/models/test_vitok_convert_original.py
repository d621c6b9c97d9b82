"""Converter from the authors' released ViTok-v1 code checkpoints (official key names of philippe-eecs/vitok)."""

import pytest
import torch

from hf_compact.vitok import VITOK_PRESETS, AutoencoderViTok, convert_vitok_original
from hf_compact.vitok.convert_vitok_original import convert_original_state_dict, main

# A tiny S-B-like layout: preset S-B/16 with these overrides on both sides of the conversion.
TINY = dict(encoder_width=32, encoder_depth=1, encoder_heads=2, decoder_width=32, decoder_depth=2, decoder_heads=2)


def official_shapes(width=32, encoder_depth=1, decoder_depth=2, p=16, q=1, c=16):
    """The official v1 key names and shapes (philippe-eecs/vitok)."""
    hidden = int(width * 2.67)
    shapes = {
        "tubelet_embed.proj.weight": (width, 3, q, p, p),
        "tubelet_embed.proj.bias": (width,),
        "encoder_to_code.weight": (2 * c, width),
        "encoder_to_code.bias": (2 * c,),
        "code_to_decoder.weight": (width, c),
        "code_to_decoder.bias": (width,),
        "tubelet_decode.proj.weight": (width, 3, q, p, p),
        "tubelet_decode.proj.bias": (3,),
    }
    for part, depth in (("encoder", encoder_depth), ("decoder", decoder_depth)):
        shapes[f"{part}.norm.weight"] = shapes[f"{part}.norm.bias"] = (width,)
        for n in range(depth):
            block = f"{part}.blocks.{n}"
            shapes.update(
                {
                    f"{block}.norm1.weight": (width,),
                    f"{block}.norm1.bias": (width,),
                    f"{block}.attn.qkv.weight": (3 * width, width),
                    f"{block}.attn.proj.weight": (width, width),
                    f"{block}.attn.proj.bias": (width,),
                    f"{block}.norm2.weight": (width,),
                    f"{block}.norm2.bias": (width,),
                    f"{block}.mlp.fc1.weight": (hidden, width),
                    f"{block}.mlp.fc1.bias": (hidden,),
                    f"{block}.mlp.fc2.weight": (hidden, width),
                    f"{block}.mlp.fc2.bias": (hidden,),
                    f"{block}.mlp.fc3.weight": (width, hidden),
                    f"{block}.mlp.fc3.bias": (width,),
                }
            )
    return shapes


def official_state_dict(seed=0):
    """Random tensors under the official key names for the TINY configuration."""
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=generator) for key, shape in official_shapes().items()}


def test_full_size_official_layout_matches_preset():
    with torch.device("meta"):
        model = AutoencoderViTok.from_preset("S-B/16")
    state_dict = {k: torch.empty(shape, device="meta") for k, shape in official_shapes(768, 6, 12).items()}
    assert sum(t.numel() for t in state_dict.values()) == 128_862_827
    convert_original_state_dict(state_dict, model)  # raises on any key or shape mismatch


def test_conversion_maps_every_official_tensor():
    official = official_state_dict()
    checkpoint = {"model": {f"module.{k}": v for k, v in official.items()}, "step": 3}
    model = convert_vitok_original(checkpoint, "S-B/16", **TINY)
    assert (model.config.mlp_type, model.config.rope_type) == ("geglu", "1d")  # the released code's choices
    converted = model.state_dict()
    torch.testing.assert_close(converted["encoder.patch_embed.proj.weight"], official["tubelet_embed.proj.weight"])
    torch.testing.assert_close(converted["decoder.latent_proj.bias"], official["code_to_decoder.bias"])
    block = "decoder.transformer.blocks.1.mlp"
    torch.testing.assert_close(converted[f"{block}.gate_proj.weight"], official["decoder.blocks.1.mlp.fc1.weight"])
    torch.testing.assert_close(converted[f"{block}.value_proj.weight"], official["decoder.blocks.1.mlp.fc2.weight"])
    torch.testing.assert_close(converted[f"{block}.out_proj.bias"], official["decoder.blocks.1.mlp.fc3.bias"])
    assert sum(t.numel() for t in converted.values()) == sum(t.numel() for t in official.values())
    # The GeGLU gate is the GELU branch (fc1): out = fc3(gelu(fc1 x) * fc2 x).
    mlp = model.decoder.transformer.blocks[1].mlp
    x = torch.randn(2, 32)
    w = {k.split("mlp.")[1]: v for k, v in official.items() if k.startswith("decoder.blocks.1.mlp.")}
    expected = (
        torch.nn.functional.gelu(x @ w["fc1.weight"].T + w["fc1.bias"]) * (x @ w["fc2.weight"].T + w["fc2.bias"])
    ) @ w["fc3.weight"].T + w["fc3.bias"]
    torch.testing.assert_close(mlp(x), expected)


def test_ema_weights(tmp_path):
    official, ema = official_state_dict(seed=0), official_state_dict(seed=1)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": official, "ema": ema, "step": 10}, path)
    model = convert_vitok_original(torch.load(path, weights_only=True), "S-B/16", use_ema=True, **TINY)
    torch.testing.assert_close(model.state_dict()["encoder.to_latent.weight"], ema["encoder_to_code.weight"])
    with pytest.raises(ValueError, match="no 'ema' weights"):
        convert_vitok_original({"model": official}, "S-B/16", use_ema=True, **TINY)


def test_cli_writes_a_loadable_folder(tmp_path, monkeypatch):
    official = official_state_dict()
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": official}, path)
    monkeypatch.setitem(VITOK_PRESETS, "tiny-test", {**VITOK_PRESETS["S-B/16"], **TINY})
    main(["--checkpoint", str(path), "--preset", "tiny-test", "--output", str(tmp_path / "out")])
    reloaded = AutoencoderViTok.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(
        reloaded.state_dict()["decoder.to_pixels.proj.weight"], official["tubelet_decode.proj.weight"]
    )


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda sd: sd.pop("encoder.norm.bias"), r"missing keys: encoder\.transformer\.norm\.bias"),
        (lambda sd: sd.update({"posemb": torch.zeros(1, 4, 32)}), "unexpected keys: posemb"),
        (
            lambda sd: sd.update({"encoder_to_code.weight": torch.zeros(8, 32)}),
            r"mis-shaped keys: encoder\.to_latent\.weight: expected \(32, 32\), got \(8, 32\)",
        ),
    ],
)
def test_bad_checkpoints(corrupt, match):
    state_dict = official_state_dict()
    corrupt(state_dict)
    with pytest.raises(ValueError, match=match):
        convert_vitok_original({"model": state_dict}, "S-B/16", **TINY)


def test_not_a_checkpoint():
    with pytest.raises(TypeError, match="checkpoint must be a dict"):
        convert_vitok_original([1, 2], "S-B/16")
    with pytest.raises(ValueError, match="state dict of tensors"):
        convert_vitok_original({"model": {"a": 1}}, "S-B/16")
