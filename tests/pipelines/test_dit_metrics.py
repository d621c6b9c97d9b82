"""Generation metrics (Inception Score, class agreement) and ``training/eval_generation.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiTTransformer2DModel
from launch import load_training_script
from PIL import Image
from transformers import pipeline as transformers_pipeline

from hf_compact import (
    AutoencoderViTok,
    CCTConfig,
    CCTForImageClassification,
    CCTImageProcessor,
    DiTImagePipeline,
)
from hf_compact.metrics import ClassAgreement, InceptionScore, inception_score_from_probabilities

eval_generation = load_training_script("eval_generation")

BANDS = ["top", "middle", "bottom"]


def band_classifier(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, 15, W) in [0, 1] -> logits of which horizontal third is brightest, in BANDS order."""
    return torch.stack([third.mean(dim=(1, 2, 3)) for third in pixels.chunk(3, dim=2)], dim=1) * 10


def band_images(bands: list[int]) -> torch.Tensor:
    images = torch.zeros(len(bands), 3, 15, 6)
    for index, band in enumerate(bands):
        images[index, :, 5 * band : 5 * band + 5] = 1.0
    return images


def test_inception_score_closed_forms():
    confident_and_diverse = torch.eye(4).repeat(5, 1)  # 20 samples, every class equally often
    assert inception_score_from_probabilities(confident_and_diverse, splits=1) == pytest.approx((4.0, 0.0))
    assert inception_score_from_probabilities(torch.full((6, 4), 0.25), splits=2) == pytest.approx((1.0, 0.0))
    # Two classes, p = [0.9, 0.1] and [0.1, 0.9] half each: exp(KL to the uniform marginal).
    mixed = torch.tensor([[0.9, 0.1], [0.1, 0.9]]).repeat(3, 1)
    kl = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert inception_score_from_probabilities(mixed, splits=1)[0] == pytest.approx(math.exp(kl))

    metric = InceptionScore(
        lambda pixels: torch.log(confident_and_diverse[: len(pixels)] + 1e-9), splits=1, name="gis"
    )
    metric.add_batch(predictions=torch.zeros(8, 3, 2, 2))  # the first 8 rows: classes 0..3 twice
    assert metric.compute() == pytest.approx({"gis": 4.0, "gis_std": 0.0})
    with pytest.raises(ValueError, match="splits: expected a value in"):
        inception_score_from_probabilities(confident_and_diverse, splits=21)
    with pytest.raises(ValueError, match=r"classifier: expected \(B=2, K\) logits"):
        InceptionScore(lambda pixels: torch.zeros(3)).add_batch(predictions=torch.zeros(2, 3, 2, 2))


def test_class_agreement_matches_classes_by_name_and_counts_frames():
    generator_names = ["bottom", "top", "middle"]  # the generator numbers its classes differently
    metric = ClassAgreement(band_classifier, class_names=generator_names, classifier_class_names=BANDS)
    # generator class 1 = "top" (band 0): right; class 0 = "bottom" (band 2) drawn as "middle": wrong.
    metric.add_batch(predictions=band_images([0, 1]), references=[1, 0])
    videos = torch.stack([band_images([2, 2, 0]), band_images([1, 1, 1])])  # (2, T=3, 3, H, W)
    metric.add_batch(predictions=videos, references=torch.tensor([0, 2]))  # 2 of 3 frames, then 3 of 3
    assert metric.compute() == {"class_agreement": pytest.approx(6 / 8)}

    with pytest.raises(ValueError, match=r"missing \['left'\]"):
        ClassAgreement(band_classifier, class_names=["left"], classifier_class_names=BANDS)
    with pytest.raises(TypeError, match="references: expected integer class ids"):
        metric.add_batch(predictions=band_images([0]), references=[0.5])
    with pytest.raises(ValueError, match=r"references: expected 1 class ids \(one per sample\), got 2"):
        metric.add_batch(predictions=band_images([0]), references=[0, 1])
    with pytest.raises(ValueError, match=r"predictions: expected images \(B, 3, H, W\)"):
        metric.add_batch(predictions=torch.zeros(1, 1, 4, 4), references=[0])


@pytest.fixture(scope="module")
def tiny_cct_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cct")
    config = CCTConfig.from_preset(
        "cct_2_3x2_32",
        id2label=dict(enumerate(BANDS)),
        hidden_size=32,
        intermediate_size=32,
        conv_intermediate_channels=8,
    )
    torch.manual_seed(0)
    CCTForImageClassification(config).save_pretrained(path)
    CCTImageProcessor().save_pretrained(path)
    return path


def test_class_agreement_from_a_saved_classifier_agrees_with_the_transformers_pipeline(tiny_cct_dir):
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    metric = ClassAgreement.from_pretrained(tiny_cct_dir, class_names=BANDS)
    references = [0, 1, 2, 0, 1, 2]
    agreement = metric.compute(predictions=images, references=references)["class_agreement"]

    classify = transformers_pipeline("image-classification", model=str(tiny_cct_dir))
    pil_images = [Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for image in images]
    predicted = [BANDS.index(result[0]["label"]) for result in classify(pil_images, top_k=1)]
    assert agreement == pytest.approx(np.mean(np.array(predicted) == np.array(references)))


class TinyFeatureNet(torch.nn.Module):
    """Stands in for Inception / I3D: a fixed random conv + global pooling (TorchScript, like the real files)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 3)

    def forward(self, pixels: torch.Tensor, return_features: bool = True) -> torch.Tensor:
        features = self.conv(pixels / 255.0).mean(dim=(2, 3))
        return features if return_features else features[:, :3]


def test_eval_generation_end_to_end(tmp_path, tiny_cct_dir):
    torch.manual_seed(0)
    vae = AutoencoderViTok(
        latent_channels=4,
        patch_size=8,
        encoder_width=16,
        encoder_depth=1,
        encoder_heads=2,
        decoder_width=16,
        decoder_depth=1,
        decoder_heads=2,
        sample_size=32,
    )
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        sample_size=4,
        patch_size=1,
        norm_num_groups=1,
        num_embeds_ada_norm=3,
    )
    DiTImagePipeline(transformer, vae, DDIMScheduler(), id2label=dict(enumerate(BANDS))).save_pretrained(
        tmp_path / "pipe"
    )
    torch.jit.script(TinyFeatureNet()).save(str(tmp_path / "features.pt"))
    for index in range(6):
        folder = tmp_path / "real" / "train" / BANDS[index % 3]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 40 * index, np.uint8)).save(folder / f"{index}.png")

    common = [
        "--pipeline_name_or_path",
        str(tmp_path / "pipe"),
        "--num_samples_per_class",
        "2",
        "--num_inference_steps",
        "2",
        "--batch_size",
        "4",
        "--feature_extractor",
        str(tmp_path / "features.pt"),
        "--inception_classifier",
        str(tmp_path / "features.pt"),
        "--inception_classifier_kwargs",
        '{"return_features": false}',
        "--inception_splits",
        "2",
        "--classifier_name_or_path",
        str(tiny_cct_dir),
        "--trust_torchscript_code",
    ]
    results = eval_generation.main(
        [
            *common,
            "--train_dir",
            str(tmp_path / "real"),
            "--save_reference_statistics",
            str(tmp_path / "real.safetensors"),
            "--output_dir",
            str(tmp_path / "eval"),
        ]
    )
    assert results["num_samples"] == 6 and results["gfid"] > 0 and 1.0 <= results["gis"] <= 3.0  # IS is in [1, K]
    assert 0.0 <= results["class_agreement"] <= 1.0
    assert Image.open(results["sample_grid"]).size == (2 * 32, 3 * 32)
    assert json.loads((tmp_path / "eval" / "generation_metrics.json").read_text()) == results

    again = eval_generation.main(
        [
            *common,
            "--reference_statistics",
            str(tmp_path / "real.safetensors"),
            "--output_dir",
            str(tmp_path / "eval2"),
        ]
    )
    assert again["gfid"] == pytest.approx(results["gfid"]) and again["class_agreement"] == results["class_agreement"]

    with pytest.raises(ValueError, match="a Fréchet distance needs real data"):
        eval_generation.main([*common, "--output_dir", str(tmp_path / "eval3")])
