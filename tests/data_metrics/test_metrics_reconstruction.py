"""Reconstruction metrics against reference implementations: PSNR (skimage, torchmetrics), SSIM (skimage),
Fréchet distance (scipy.linalg.sqrtm), and the TorchScript feature-network loading path."""

from __future__ import annotations

import shutil

import huggingface_hub
import numpy as np
import pytest
import torch
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.image import PeakSignalNoiseRatio as TorchmetricsPSNR

from hf_compact.metrics import (
    FeatureStatistics,
    FrechetDistance,
    PeakSignalNoiseRatio,
    StructuralSimilarity,
    TorchScriptFeatureExtractor,
    frechet_distance,
)


@pytest.fixture(scope="module")
def image_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """References in [-1, 1] and noisy reconstructions that overshoot the range (clamped by the metrics)."""
    generator = torch.Generator().manual_seed(0)
    references = torch.rand(4, 3, 24, 24, generator=generator) * 2 - 1
    predictions = references + 0.1 * torch.randn(4, 3, 24, 24, generator=generator)
    return predictions, references


def as_unit_numpy(pixels: torch.Tensor) -> np.ndarray:
    return ((pixels.clamp(-1, 1) + 1) / 2).double().numpy()


def test_psnr_matches_skimage_and_torchmetrics(image_pair):
    predictions, references = image_pair
    metric = PeakSignalNoiseRatio()
    metric.add_batch(predictions=predictions[:3], references=references[:3])
    psnr = metric.compute(predictions=predictions[3:], references=references[3:])["psnr"]
    expected = np.mean(
        [
            peak_signal_noise_ratio(reference, prediction, data_range=1.0)
            for prediction, reference in zip(as_unit_numpy(predictions), as_unit_numpy(references))
        ]
    )
    assert psnr == pytest.approx(expected, abs=1e-4)
    reference_metric = TorchmetricsPSNR(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3))
    reference_metric.update(torch.from_numpy(as_unit_numpy(predictions)), torch.from_numpy(as_unit_numpy(references)))
    assert psnr == pytest.approx(reference_metric.compute().item(), abs=1e-4)
    assert 15 < psnr < 30


def test_ssim_matches_skimage(image_pair):
    predictions, references = image_pair
    ssim = StructuralSimilarity().compute(predictions=predictions, references=references)["ssim"]
    expected = np.mean(
        [
            structural_similarity(
                reference,
                prediction,
                data_range=1.0,
                channel_axis=0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for prediction, reference in zip(as_unit_numpy(predictions), as_unit_numpy(references))
        ]
    )
    assert ssim == pytest.approx(expected, abs=1e-4)
    assert 0.3 < ssim < 1.0


def test_videos_are_scored_frame_by_frame(image_pair):
    predictions, references = image_pair
    # (4, 3, H, W) frames -> one (2, 3, 2, H, W) video batch holding the same frames
    video_predictions = predictions.view(2, 2, 3, 24, 24).transpose(1, 2)
    video_references = references.view(2, 2, 3, 24, 24).transpose(1, 2)
    for metric_class in (PeakSignalNoiseRatio, StructuralSimilarity):
        on_frames = metric_class().compute(predictions=predictions, references=references)
        on_videos = metric_class().compute(predictions=video_predictions, references=video_references)
        assert on_videos == pytest.approx(on_frames)


def test_metric_protocol_errors_and_reset(image_pair):
    predictions, references = image_pair
    metric = PeakSignalNoiseRatio()
    with pytest.raises(ValueError, match="predictions: expected the shape of references"):
        metric.add_batch(predictions=predictions[:2], references=references)
    with pytest.raises(TypeError, match="expected torch.Tensors"):
        metric.add_batch(predictions=predictions.numpy(), references=references)
    with pytest.raises(ValueError, match="at least one image"):
        metric.compute()
    metric.add(prediction=predictions[0], reference=references[0])
    first = metric.compute()
    assert metric.num_images == 0  # compute() resets, as evaluate.Metric does
    assert metric.compute(predictions=predictions[:1], references=references[:1]) == first
    assert PeakSignalNoiseRatio().compute(predictions=references, references=references)["psnr"] == pytest.approx(
        100.0
    )
    with pytest.raises(ValueError, match="at least 11x11"):
        StructuralSimilarity().add_batch(predictions=predictions[..., :8, :8], references=references[..., :8, :8])
    with pytest.raises(ValueError, match="value_range"):
        PeakSignalNoiseRatio(value_range=(1.0, 0.0))


def scipy_frechet_distance(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """The pytorch-fid / clean-fid computation."""
    mean_1, mean_2 = features_1.mean(0), features_2.mean(0)
    covariance_1, covariance_2 = np.cov(features_1, rowvar=False), np.cov(features_2, rowvar=False)
    covariance_sqrt = linalg.sqrtm(covariance_1 @ covariance_2).real
    return float(((mean_1 - mean_2) ** 2).sum() + np.trace(covariance_1 + covariance_2 - 2 * covariance_sqrt))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    features_1 = rng.normal(size=(200, 16))
    features_2 = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    statistics_1, statistics_2 = FeatureStatistics(), FeatureStatistics()
    for chunk in np.array_split(features_1, 3):  # streaming updates give the full-batch statistics
        statistics_1.update(torch.from_numpy(chunk).float())
    statistics_2.update(torch.from_numpy(features_2).float())
    np.testing.assert_allclose(statistics_1.mean.numpy(), features_1.mean(0), atol=1e-6)
    np.testing.assert_allclose(statistics_1.covariance.numpy(), np.cov(features_1, rowvar=False), atol=1e-6)
    distance = frechet_distance(statistics_1.mean, statistics_1.covariance, statistics_2.mean, statistics_2.covariance)
    assert distance == pytest.approx(scipy_frechet_distance(features_1, features_2), rel=1e-5)
    assert frechet_distance(
        statistics_1.mean, statistics_1.covariance, statistics_1.mean, statistics_1.covariance
    ) == (pytest.approx(0.0, abs=1e-8))


def test_feature_statistics_save_load(tmp_path):
    statistics = FeatureStatistics()
    statistics.update(torch.randn(10, 4))
    statistics.save(tmp_path / "stats.safetensors")
    loaded = FeatureStatistics.load(tmp_path / "stats.safetensors")
    torch.testing.assert_close(loaded.covariance, statistics.covariance)
    assert loaded.num_samples == 10
    with pytest.raises(ValueError, match="expected dimension 4"):
        loaded.update(torch.randn(3, 5))
    with pytest.raises(ValueError, match="at least 2 samples"):
        _ = FeatureStatistics().mean


class PoolingFeatureNetwork(torch.nn.Module):
    """Stands in for a TorchScript Inception: the (0, 255) pixel mean and std per channel as 6 features."""

    def forward(self, pixels: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = torch.cat([pixels.mean(dim=(2, 3)), pixels.std(dim=(2, 3))], dim=1)
        return features if return_features else features.sum(dim=1)


def test_torchscript_feature_extractor_from_file_and_hub_cache(tmp_path, monkeypatch):
    scripted_path = tmp_path / "pooling.pt"
    torch.jit.script(PoolingFeatureNetwork()).save(str(scripted_path))
    with pytest.raises(ValueError, match="trust_torchscript_code: loading the TorchScript network"):
        TorchScriptFeatureExtractor.from_pretrained(scripted_path)
    extractor = TorchScriptFeatureExtractor.from_pretrained(
        scripted_path, trust_torchscript_code=True, call_kwargs={"return_features": True}
    )
    pixels = torch.rand(5, 3, 8, 8) * 2 - 1
    expected = PoolingFeatureNetwork()((pixels + 1) * 127.5, return_features=True)
    torch.testing.assert_close(extractor(pixels), expected, rtol=1e-5, atol=1e-4)

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo_cache = tmp_path / "hub" / "models--someone--feature-net"
    (repo_cache / "refs").mkdir(parents=True)
    (repo_cache / "refs" / "main").write_text(commit)
    (repo_cache / "snapshots" / commit).mkdir(parents=True)
    shutil.copy(scripted_path, repo_cache / "snapshots" / commit / "pooling.pt")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="revision: a TorchScript network from the Hub"):
        TorchScriptFeatureExtractor.from_pretrained(
            "someone/feature-net", "pooling.pt", cache_dir=tmp_path / "hub", trust_torchscript_code=True
        )
    from_hub = TorchScriptFeatureExtractor.from_pretrained(
        "someone/feature-net",
        "pooling.pt",
        cache_dir=tmp_path / "hub",
        trust_torchscript_code=True,
        revision=commit,
        call_kwargs={"return_features": True},
    )
    torch.testing.assert_close(from_hub(pixels), extractor(pixels))

    (tmp_path / "corrupt.pt").write_bytes(b"not a torchscript archive")
    with pytest.raises(ValueError, match="expected a TorchScript archive"):
        TorchScriptFeatureExtractor.from_pretrained(tmp_path / "corrupt.pt", trust_torchscript_code=True)
    with pytest.raises(ValueError, match="filename: expected the name of a file"):
        TorchScriptFeatureExtractor.from_pretrained(tmp_path, trust_torchscript_code=True)


def test_frechet_distance_metric_protocol(tmp_path):
    extractor = TorchScriptFeatureExtractor(PoolingFeatureNetwork(), call_kwargs={"return_features": True})
    generator = torch.Generator().manual_seed(1)
    references = torch.rand(40, 3, 8, 8, generator=generator) * 2 - 1
    metric = FrechetDistance(extractor, name="rfid")
    metric.add_batch(predictions=references[:20], references=references[:20])
    assert metric.compute(predictions=references[20:], references=references[20:]) == {
        "rfid": pytest.approx(0, abs=1e-6)
    }

    darker = (references - 0.5).clamp(-1, 1)
    metric.add_batch(predictions=darker, references=references)
    paired = metric.compute()["rfid"]
    reference_statistics = FeatureStatistics()
    reference_statistics.update(extractor(references))
    against_dataset = FrechetDistance(extractor, reference_statistics=reference_statistics, name="gfid")
    assert against_dataset.compute(predictions=darker) == {"gfid": pytest.approx(paired)}
    expected = scipy_frechet_distance(extractor(darker).double().numpy(), extractor(references).double().numpy())
    assert paired == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="references: expected None"):
        against_dataset.add_batch(predictions=darker, references=references)
