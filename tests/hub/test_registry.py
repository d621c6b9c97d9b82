"""The explicit class registry: saved class names resolve to this package's classes, or fail with the known ones."""

from __future__ import annotations

import json

import diffusers
import pytest

import hf_compact
from hf_compact.hub import load_for_push
from hf_compact.registry import CLASS_REGISTRY, resolve_class


def test_registry_holds_the_saved_classes_of_the_package():
    assert set(CLASS_REGISTRY) == {
        "AutoencoderViTok", "CCTForImageClassification", "CCTModel", "DiTImagePipeline", "DiTTransformer3DModel",
        "DiTVideoPipeline", "TextCCTForSequenceClassification", "TextCCTModel",
    }  # fmt: skip
    for name, cls in CLASS_REGISTRY.items():
        assert cls.__name__ == name and getattr(hf_compact, name) is cls
        assert resolve_class(name, "name") is cls


def test_library_fallback_and_unknown_names():
    assert resolve_class("AutoencoderKL", "name", diffusers) is diffusers.AutoencoderKL
    with pytest.raises(
        ValueError,
        match=r"^--vae: expected one of \['AutoencoderViTok', .*'TextCCTModel'\] or a "
        r"class of diffusers, got 'AutoencoderXYZ'\.$",
    ):
        resolve_class("AutoencoderXYZ", "--vae", diffusers)
    with pytest.raises(ValueError, match=r"expected one of \[.*\], got 'AutoencoderKL'\.$"):
        resolve_class("AutoencoderKL", "name")  # not this package's, and no fallback
    with pytest.raises(ValueError, match="got 'is_torch_available'"):
        resolve_class("is_torch_available", "name", diffusers)  # a function of diffusers, not a class
    with pytest.raises(ValueError, match="got None"):
        resolve_class(None, "name")


def test_load_for_push_names_the_known_classes(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    with pytest.raises(ValueError, match=r"folder \(.*config.json: architectures\): expected one of \['Autoenc"):
        load_for_push(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "NoSuchModel"}))
    with pytest.raises(ValueError, match=r"_class_name\): expected one of .* or a class of diffusers, got 'NoSuch"):
        load_for_push(tmp_path)
