"""Peak signal-to-noise ratio (reconstruction PSNR, rPSNR in ViTok)."""

from __future__ import annotations

import torch

from .per_image import PerImageMeanMetric


class PeakSignalNoiseRatio(PerImageMeanMetric):
    """Mean per-image PSNR in dB (videos: mean over frames), with the ``evaluate.Metric`` protocol.

    ``10 * log10(1 / MSE)`` on images mapped to [0, 1] (predictions clamped), as scikit-image's
    ``peak_signal_noise_ratio(data_range=1)`` per image. A perfect image scores 100 dB (MSE floored at 1e-10).

    Example:
        >>> metric = PeakSignalNoiseRatio()
        >>> metric.add_batch(predictions=reconstructions, references=images)  # (B, 3, H, W) in [-1, 1]
        >>> metric.compute()
        {'psnr': 27.3}
    """

    name = "psnr"

    def score(self, predictions: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        mse = (predictions - references).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
        return -10.0 * torch.log10(mse)
