"""Official CCT checkpoints -> hf_compact: same logits as the official code, clear errors for bad state dicts."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageClassification, pipeline

from hf_compact import CCTConfig, CCTForImageClassification, CCTImageProcessor
from hf_compact.cct.convert_cct_original import convert_state_dict, main
from hf_compact.cct.image_processing_cct import CIFAR10_MEAN, CIFAR10_STD

DATA = Path(__file__).parents[1] / "data" / "cct"
CASES = json.loads((DATA / "cases.json").read_text())
_CUSTOM = CASES["cct_2_3x1_32_custom"]["kwargs"]

# Each official reference case (random weights saved with the official keys, official logits) and its config.
REFERENCE_CONFIGS = {
    "cct_2_3x2_32": lambda: CCTConfig.from_preset("cct_2_3x2_32"),
    "cvt_2_4_32": lambda: CCTConfig.from_preset("cvt_2_4_32"),
    "vit_2_4_32": lambda: CCTConfig.from_preset("vit_2_4_32"),
    "vit_2_4_32_sine": lambda: CCTConfig.from_preset("vit_2_4_32_sine"),
    "cct_2_3x1_32_custom": lambda: CCTConfig(
        image_size=_CUSTOM["img_size"],
        num_channels=_CUSTOM["n_input_channels"],
        hidden_size=_CUSTOM["embedding_dim"],
        num_conv_layers=_CUSTOM["n_conv_layers"],
        conv_kernel_size=_CUSTOM["kernel_size"],
        conv_stride=_CUSTOM["stride"],
        conv_padding=_CUSTOM["padding"],
        pooling_kernel_size=_CUSTOM["pooling_kernel_size"],
        pooling_stride=_CUSTOM["pooling_stride"],
        pooling_padding=_CUSTOM["pooling_padding"],
        num_hidden_layers=_CUSTOM["num_layers"],
        num_attention_heads=_CUSTOM["num_heads"],
        intermediate_size=int(_CUSTOM["embedding_dim"] * _CUSTOM["mlp_ratio"]),
        num_labels=_CUSTOM["num_classes"],
        position_embedding_type=_CUSTOM["positional_embedding"],
    ),
}


def _official_state_dict(name: str) -> dict[str, torch.Tensor]:
    return load_file(DATA / f"{name}.official.safetensors")


@pytest.mark.parametrize("name", sorted(REFERENCE_CONFIGS))
def test_converted_model_matches_official_logits(name):
    config = REFERENCE_CONFIGS[name]()
    model = CCTForImageClassification(config).eval()
    model.load_state_dict(convert_state_dict(_official_state_dict(name), config))
    reference = load_file(DATA / f"{name}.io.safetensors")

    with torch.no_grad():
        logits = model(reference["pixel_values"]).logits

    # The official count includes the frozen sine table, which is a recomputed buffer here.
    sine_table_size = (
        model.cct.embeddings.position_embeddings.numel() if config.position_embedding_type == "sine" else 0
    )
    assert model.num_parameters() + sine_table_size == CASES[name]["params"]
    torch.testing.assert_close(logits, reference["logits"], rtol=1e-5, atol=1e-5)


def test_converter_rejects_non_mapping():
    with pytest.raises(ValueError, match="`state_dict` must be a mapping of names to tensors, got list"):
        convert_state_dict([torch.zeros(1)], REFERENCE_CONFIGS["cvt_2_4_32"]())


def test_converter_accepts_wrappers_and_module_prefix():
    config = REFERENCE_CONFIGS["cvt_2_4_32"]()
    official = _official_state_dict("cvt_2_4_32")
    wrapped = {"model": {f"module.{key}": value for key, value in official.items()}, "epoch": 3}

    converted = convert_state_dict(wrapped, config)

    assert converted.keys() == convert_state_dict(official, config).keys()
    torch.testing.assert_close(converted["classifier.weight"], official["classifier.fc.weight"])


def test_converter_names_unexpected_missing_and_misshaped_keys():
    config = REFERENCE_CONFIGS["cct_2_3x2_32"]()
    official = _official_state_dict("cct_2_3x2_32")

    with pytest.raises(ValueError, match=r"unexpected keys: classifier\.extra\."):
        convert_state_dict({**official, "classifier.extra": torch.zeros(1)}, config)

    without_norm = {key: value for key, value in official.items() if key != "classifier.norm.weight"}
    with pytest.raises(ValueError, match=r"missing keys: cct\.layernorm\.weight"):
        convert_state_dict(without_norm, config)

    with pytest.raises(ValueError, match=r"mis-shaped keys: classifier\.weight: expected \(10, 128\), got \(7, 128\)"):
        convert_state_dict({**official, "classifier.fc.weight": torch.zeros(7, 128)}, config)


def test_converter_rejects_learned_table_for_sine_config():
    """A checkpoint whose `positional_emb` is not the sine table (the official `_sine` bug trains a learnable one)
    must not be silently replaced by the sine table."""
    config = CCTConfig.from_preset("vit_2_4_32_sine")
    official = _official_state_dict("vit_2_4_32")  # learnable table, same shape

    with pytest.raises(ValueError, match="position_embedding_type='learnable'"):
        convert_state_dict(official, config)


def test_cli_writes_folder_that_auto_classes_and_pipeline_load(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = tmp_path / "cct_2_3x2_32.pth"
    torch.save({"state_dict": _official_state_dict("cct_2_3x2_32")}, checkpoint)
    output = tmp_path / "converted"

    main(["--checkpoint", str(checkpoint), "--preset", "cct_2_3x2_32", "--output", str(output)])

    model = AutoModelForImageClassification.from_pretrained(output).eval()
    reference = load_file(DATA / "cct_2_3x2_32.io.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(model(reference["pixel_values"]).logits, reference["logits"], rtol=1e-5, atol=1e-5)
    processor = CCTImageProcessor.from_pretrained(output)
    assert processor.image_mean == pytest.approx(CIFAR10_MEAN) and processor.image_std == pytest.approx(CIFAR10_STD)

    classifier = pipeline("image-classification", model=str(output))
    predictions = classifier(reference["pixel_values"][0].permute(1, 2, 0).clamp(0, 1).mul(255).byte().numpy())
    assert {prediction["label"] for prediction in predictions} <= set(model.config.id2label.values())


def test_cli_with_other_class_count_keeps_encoder_and_resets_head(tmp_path):
    official = _official_state_dict("cct_2_3x2_32")
    checkpoint = tmp_path / "cct_2_3x2_32.safetensors"
    save_file(official, checkpoint)
    output = tmp_path / "five_classes"

    main(
        [
            "--checkpoint",
            str(checkpoint),
            "--preset",
            "cct_2_3x2_32",
            "--num_labels",
            "5",
            "--output",
            str(output),
        ]
    )

    model = CCTForImageClassification.from_pretrained(output).eval()
    config = REFERENCE_CONFIGS["cct_2_3x2_32"]()
    reference = CCTForImageClassification(config).eval()
    reference.load_state_dict(convert_state_dict(official, config))
    pixel_values = load_file(DATA / "cct_2_3x2_32.io.safetensors")["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(model.cct(pixel_values).pooler_output, reference.cct(pixel_values).pooler_output)
    assert model.classifier.weight.shape == (5, 128)
    assert not torch.equal(model.classifier.weight[:5], official["classifier.fc.weight"][:5])


def test_cli_rejects_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="`checkpoint` must be an existing"):
        main(
            [
                "--checkpoint",
                str(tmp_path / "nope.pth"),
                "--preset",
                "cct_2_3x2_32",
                "--output",
                str(tmp_path),
            ]
        )
