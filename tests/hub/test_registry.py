"""Saved class names resolve to this package's classes (or fail with the known ones), and the folders that this
package's models and pipelines save load back through diffusers and transformers after ``import hf_compact``."""

from __future__ import annotations

import json

import diffusers
import pytest
import tiny_models
import torch
from diffusers import DDIMScheduler, DiffusionPipeline

from hf_compact import CCTModel, DiTImagePipeline, DiTVideoPipeline, TextCCTModel
from hf_compact.hub import load_for_push
from hf_compact.registry import CLASS_REGISTRY, resolve_class

LABELS = {0: "zero", 1: "one", 2: "two"}


def image_pipeline() -> DiTImagePipeline:
    return DiTImagePipeline(tiny_models.tiny_dit_2d(), tiny_models.tiny_vitok(), DDIMScheduler(), id2label=LABELS)


def video_pipeline() -> DiTVideoPipeline:
    transformer = tiny_models.tiny_dit_3d(sample_size=2, sample_frames=2)
    vae = tiny_models.tiny_vitok(tubelet_size=2, sample_size=8)
    return DiTVideoPipeline(transformer, vae, DDIMScheduler(), id2label=LABELS)


SAVED_OBJECTS = {
    "vitok": tiny_models.tiny_vitok,
    "cct": tiny_models.tiny_cct,
    "cct_backbone": lambda: CCTModel(tiny_models.tiny_cct().config),
    "text_cct": tiny_models.tiny_text_cct,
    "text_cct_backbone": lambda: TextCCTModel(tiny_models.tiny_text_cct().config),
    "dit_3d": tiny_models.tiny_dit_3d,
    "image_pipeline": image_pipeline,
    "video_pipeline": video_pipeline,
}


def saved_class_name(folder) -> str:
    if (folder / "model_index.json").is_file():
        return json.loads((folder / "model_index.json").read_text())["_class_name"]
    config = json.loads((folder / "config.json").read_text())
    return config.get("_class_name") or config["architectures"][0]


def state_dicts(model_or_pipeline) -> dict[str, torch.Tensor]:
    modules = getattr(model_or_pipeline, "components", {"": model_or_pipeline})
    return {
        f"{name}.{key}": tensor
        for name, module in modules.items()
        if isinstance(module, torch.nn.Module)
        for key, tensor in module.state_dict().items()
    }


def test_every_saved_class_resolves_and_loads_back(tmp_path):
    loaded_classes = set()
    for name, build in SAVED_OBJECTS.items():
        saved = build()
        saved.save_pretrained(tmp_path / name)
        assert resolve_class(saved_class_name(tmp_path / name), "name") is type(saved)
        loaded, _ = load_for_push(tmp_path / name)
        assert type(loaded) is type(saved), name
        expected, actual = state_dicts(saved), state_dicts(loaded)
        assert expected.keys() == actual.keys() and all(torch.equal(expected[key], actual[key]) for key in expected)
        loaded_classes.add(type(loaded))
    assert loaded_classes == set(CLASS_REGISTRY.values())  # no registered class goes untested


@pytest.mark.parametrize("build", [image_pipeline, video_pipeline], ids=["image", "video"])
def test_saved_pipelines_load_with_diffusion_pipeline_after_import(tmp_path, build):
    pipeline = build()
    pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == type(pipeline).__name__
    assert index["vae"] == ["hf_compact.vitok.autoencoder_vitok", "AutoencoderViTok"]
    # A class of hf_compact.dit.<file> must not be recorded as diffusers' own `dit` pipelines folder.
    transformer_entry = ["hf_compact.dit", "DiTTransformer3DModel"] if build is video_pipeline else None
    assert index["transformer"] == (transformer_entry or ["diffusers", "DiTTransformer2DModel"])

    reloaded = DiffusionPipeline.from_pretrained(tmp_path)
    assert type(reloaded) is type(pipeline) and reloaded.id2label == LABELS
    samples = [
        getattr(
            candidate(class_labels=[0, 2], num_inference_steps=2, generator=torch.Generator().manual_seed(0)),
            "images" if build is image_pipeline else "frames",
        )
        for candidate in (pipeline, reloaded)
    ]
    if build is image_pipeline:
        samples = [[image.tobytes() for image in images] for images in samples]
        assert samples[0] == samples[1]
    else:
        torch.testing.assert_close(torch.as_tensor(samples[0]), torch.as_tensor(samples[1]), rtol=0, atol=0)


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
