"""Each family names its models the papers' way; the model cards ask the model (or its config) for that name."""

from __future__ import annotations

import pytest
import tiny_models
import torch
from diffusers import DiTTransformer2DModel

from hf_compact import AutoencoderViTok, CCTConfig, DiTTransformer3DModel, TextCCTConfig
from hf_compact.dit import DIT_PRESETS, dit_paper_name, dit_preset
from hf_compact.hub import render_model_card


@pytest.mark.parametrize(
    ("preset", "name"),
    [
        ("S-B/16", "ViTok S-B/16"),
        ("S-L/16", "ViTok S-L/16"),
        ("S-B/4x8", "ViTok S-B/4x8"),
        ("v2-350M-f16x16", "ViTok-v2 f16x16"),
        ("v2-5B-f32x256", "ViTok-v2 f32x256"),
    ],
)
def test_vitok_presets_carry_the_papers_names(preset, name):
    with torch.device("meta"):
        assert AutoencoderViTok.from_preset(preset).paper_name == name


def test_vitok_sizes_outside_the_papers_are_described():
    assert tiny_models.tiny_vitok().paper_name == "ViTok (patch 4)"
    assert tiny_models.tiny_vitok(tubelet_size=2, sample_size=8).paper_name == "ViTok (patch 4, tubelet 2)"


def test_dit_presets_build_both_transformers_and_name_them():
    with torch.device("meta"):
        image = DiTTransformer2DModel(**dit_preset("DiT-XL", in_channels=4, patch_size=2, num_embeds_ada_norm=10))
        video = DiTTransformer3DModel(**dit_preset("DiT-S", in_channels=4, patch_size=(1, 2, 2)))
    assert image.config.num_layers == DIT_PRESETS["DiT-XL"]["num_layers"] == 28
    assert dit_paper_name(image.config) == "DiT-XL/2"
    assert video.paper_name == "DiT-S/1x2x2"
    assert tiny_models.tiny_dit_3d().paper_name == "DiT (1 layer, width 16)"
    with pytest.raises(
        ValueError, match=r"^name: expected one of \['DiT-B', 'DiT-L', 'DiT-S', 'DiT-XL'\], got 'DiT-H'"
    ):
        dit_preset("DiT-H")


@pytest.mark.parametrize(
    ("build", "owner"),
    [
        (tiny_models.tiny_cct, CCTConfig),
        (tiny_models.tiny_text_cct, TextCCTConfig),
        (tiny_models.tiny_vitok, AutoencoderViTok),
        (tiny_models.tiny_dit_3d, DiTTransformer3DModel),
    ],
    ids=["cct", "text_cct", "vitok", "dit_3d"],
)
def test_cards_ask_the_family_for_its_name(build, owner, monkeypatch):
    monkeypatch.setattr(owner, "paper_name", property(lambda self: "Name-From-Family"), raising=False)
    card = render_model_card(build(), "someone/model")
    assert "**Name-From-Family**" in card.text
