"""ViTok training losses: LPIPS (vs torchmetrics' reference implementation), KL, reconstruction, GAN."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from skimage.metrics import structural_similarity

from hf_compact.losses import (
    LPIPS,
    StyleGANDiscriminator,
    ViTokLoss,
    ViTokLossWeights,
    adversarial_weight,
    charbonnier_loss,
    discriminator_hinge_loss,
    gaussian_kl_loss,
    generator_hinge_loss,
    ssim_loss,
)

torchmetrics_lpips = pytest.importorskip("torchmetrics.functional.image.lpips")
LPIPS_LINEAR_WEIGHTS = Path(torchmetrics_lpips.__file__).parent / "lpips_models" / "vgg.pth"


@pytest.fixture(scope="module")
def lpips_weights_folder(tmp_path_factory) -> Path:
    """A folder laid out like a real LPIPS weight repo: torchvision-style vgg16.pth (random) + lpips' vgg.pth."""
    folder = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    backbone = LPIPS(allow_random_weights=True).backbone
    torchvision_state = {key: value.clone() for key, value in backbone.state_dict().items()}
    torchvision_state["classifier.0.weight"] = torch.zeros(4, 4)  # present in torchvision's file, ignored
    torch.save(torchvision_state, folder / "vgg16.pth")
    shutil.copy(LPIPS_LINEAR_WEIGHTS, folder / "vgg.pth")
    return folder


def images(seed: int, shape=(2, 3, 32, 32)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_lpips_matches_torchmetrics_reference(lpips_weights_folder, monkeypatch):
    lpips = LPIPS.from_pretrained(lpips_weights_folder)
    # torchmetrics' LPIPS takes its VGG16 trunk from torchvision (unavailable here): hand it ours, so the
    # comparison checks everything else (scaling layer, taps, channel normalisation, linear layers, averaging).
    monkeypatch.setattr(torchmetrics_lpips, "_get_tv_model_features", lambda net, pretrained: lpips.backbone.features)
    reference = torchmetrics_lpips._LPIPS(
        pretrained=True, net="vgg", pnet_rand=True, model_path=str(LPIPS_LINEAR_WEIGHTS)
    )
    first, second = images(1), images(2)
    expected = reference(first, second).flatten()
    torch.testing.assert_close(lpips(first, second), expected, rtol=1e-4, atol=1e-6)
    assert torch.all(lpips(first, first).abs() < 1e-6)


def test_lpips_refuses_to_run_without_pretrained_weights():
    with pytest.raises(RuntimeError, match="no pretrained weights"):
        LPIPS()(images(1), images(2))


def test_lpips_rejects_mismatched_weights(lpips_weights_folder):
    lpips = LPIPS()
    linear = torch.load(lpips_weights_folder / "vgg.pth", map_location="cpu")
    linear["lin0.model.1.weight"] = torch.zeros(1, 32, 1, 1)
    with pytest.raises(ValueError, match="lin0.model.1.weight"):
        lpips.load_linear_state_dict(linear)
    with pytest.raises(ValueError, match="missing keys"):
        lpips.load_backbone_state_dict({"features.0.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(ValueError, match="target: expected the shape"):
        LPIPS(allow_random_weights=True)(images(1), images(2, (2, 3, 16, 16)))


def test_lpips_loads_from_hub_cache(lpips_weights_folder, tmp_path, monkeypatch):
    """The Hub path runs huggingface_hub.hf_hub_download for real, against a pre-filled offline cache."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_cache = tmp_path / "models--someone--lpips-vgg"
    (repo_cache / "refs").mkdir(parents=True)
    (repo_cache / "refs" / "main").write_text(commit)
    shutil.copytree(lpips_weights_folder, repo_cache / "snapshots" / commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    from_hub = LPIPS.from_pretrained("someone/lpips-vgg", cache_dir=tmp_path)
    from_folder = LPIPS.from_pretrained(lpips_weights_folder)
    torch.testing.assert_close(from_hub(images(3), images(4)), from_folder(images(3), images(4)))


def test_lpips_gradient_reaches_input_only():
    lpips = LPIPS(allow_random_weights=True)
    reconstruction = images(5, (1, 3, 3, 32, 32)).requires_grad_(True)  # a video: per-frame distances
    distances = lpips(reconstruction, images(6, (1, 3, 3, 32, 32)))
    assert distances.shape == (3,)
    distances.sum().backward()
    assert reconstruction.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in lpips.parameters())


def test_kl_is_diffusers_sum_divided_by_latent_size():
    moments = torch.randn(3, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    posterior = DiagonalGaussianDistribution(moments)
    mean, logvar = moments.chunk(2, dim=1)
    by_hand = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
    torch.testing.assert_close(gaussian_kl_loss(posterior), by_hand)
    torch.testing.assert_close(gaussian_kl_loss(posterior), posterior.kl().mean() / (4 * 4 * 4))
    video_moments = torch.randn(2, 8, 2, 4, 4)
    video_mean, video_logvar = video_moments.chunk(2, dim=1)
    torch.testing.assert_close(
        gaussian_kl_loss(DiagonalGaussianDistribution(video_moments)),
        0.5 * (video_mean.pow(2) + video_logvar.exp() - 1 - video_logvar).mean(),
    )
    assert gaussian_kl_loss(DiagonalGaussianDistribution(torch.zeros(1, 8, 2, 2))) == 0


def test_charbonnier_and_ssim_losses_against_references():
    first, second = images(7), images(8)
    torch.testing.assert_close(charbonnier_loss(first, second, eps=0.0), F.l1_loss(first, second))
    eps = 0.5
    torch.testing.assert_close(
        charbonnier_loss(first, second, eps=eps), ((first - second).pow(2) + eps**2).sqrt().mean()
    )
    expected_ssim = np.mean(
        [
            structural_similarity(
                a.numpy(),
                b.numpy(),
                data_range=2.0,
                channel_axis=0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for a, b in zip(first, second)
        ]
    )
    assert ssim_loss(first, second).item() == pytest.approx(1 - expected_ssim, abs=1e-4)
    assert ssim_loss(first, first).item() == pytest.approx(0.0, abs=1e-6)


def test_hinge_losses_and_generator_ramp():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.3])
    # 0.5 * (mean(relu(1 - [2, .5])) + mean(relu(1 + [-2, .3]))) = 0.5 * (0.25 + 0.65)
    assert discriminator_hinge_loss(real, fake).item() == pytest.approx(0.45)
    assert generator_hinge_loss(fake).item() == pytest.approx(0.85)
    assert adversarial_weight(99, 0.05, start_step=100, ramp_steps=1000) == 0.0
    assert adversarial_weight(600, 0.05, start_step=100, ramp_steps=1000) == pytest.approx(0.025)
    assert adversarial_weight(5000, 0.05, start_step=100, ramp_steps=1000) == 0.05


def test_discriminator_layout_matches_vitok_filters():
    discriminator = StyleGANDiscriminator(resolution=256)
    assert discriminator.stem[0].out_channels == 64
    channels = [(block.conv1.in_channels, block.conv2.out_channels) for block in discriminator.blocks]
    assert channels == [(64, 128), (128, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    assert discriminator.head[1].in_features == 512 * 16 and discriminator.head[3].out_features == 1


def test_discriminator_scores_images_and_frames_and_trains():
    discriminator = StyleGANDiscriminator(resolution=16, base_channels=2, max_channels=8)
    frames = images(9, (2, 3, 4, 16, 16))
    assert discriminator(frames).shape == (8,)
    logits = discriminator(images(10, (2, 3, 16, 16)))
    discriminator_hinge_loss(logits, -logits).backward()
    assert all(parameter.grad is not None for parameter in discriminator.parameters())
    with pytest.raises(ValueError, match=r"expected frames of shape \(3, 16, 16\)"):
        discriminator(images(11, (2, 3, 32, 32)))
    with pytest.raises(ValueError, match="power of two"):
        StyleGANDiscriminator(resolution=48)


def test_vitok_loss_is_the_weighted_sum_of_its_terms():
    weights = ViTokLossWeights(mse=1.0, charbonnier=0.5, ssim=0.1, kl=1e-3, lpips=1.0)
    criterion = ViTokLoss(weights, LPIPS(allow_random_weights=True))
    target, reconstruction = images(12), images(13)
    posterior = DiagonalGaussianDistribution(torch.randn(2, 8, 4, 4))
    terms = criterion(reconstruction, target, posterior)
    assert set(terms) == {"loss", "mse", "charbonnier", "ssim", "kl", "lpips"}
    expected = sum(getattr(weights, name) * value for name, value in terms.items() if name != "loss")
    torch.testing.assert_close(terms["loss"], expected)
    torch.testing.assert_close(terms["mse"], F.mse_loss(reconstruction, target))
    assert set(ViTokLoss(ViTokLossWeights(lpips=0.0))(reconstruction, target, None)) == {"loss", "mse"}
    with pytest.raises(ValueError, match="lpips: expected an LPIPS network"):
        ViTokLoss(ViTokLossWeights(lpips=1.0))
