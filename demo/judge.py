"""The demo's CCT as the judge of generated digits: class agreement, Frechet CCT distance and within-class spread.

* ``class agreement``: the share of samples classified as their conditioning digit;
* ``Frechet CCT distance``: the Fréchet distance between CCT features (the pooled sequence, before the classifier)
  of the samples and of held-out real digits (no Inception weights offline, so the demo's own classifier is the
  feature network);
* ``within-class spread``: the mean pairwise feature distance of the samples of one class over that of real digits
  of the class (averaged over classes): near 0 means copies, 1 means as varied as real digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hf_compact.data import load_digits_dataset
from hf_compact.metrics import FeatureStatistics
from hf_compact.metrics.frechet import frechet_distance

NUM_CLASSES = 10


class DigitJudge:
    """The demo's CCT as a judge of generated digits: logits and pooled features of ``(N, 3, H, W)`` in [0, 1]."""

    def __init__(self, classifier_path: Path) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.model = AutoModelForImageClassification.from_pretrained(classifier_path).eval()
        self.processor = AutoImageProcessor.from_pretrained(classifier_path)
        id2label = self.model.config.id2label
        self.classifier_ids = torch.tensor([int(id2label[index]) for index in range(len(id2label))])

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(predicted digit (N,), features (N, D))``."""
        images = list((pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        inputs = self.processor(images=images, return_tensors="pt")
        pooled = self.model.cct(inputs["pixel_values"]).pooler_output
        predicted = self.classifier_ids[self.model.classifier(pooled).argmax(-1)]
        return predicted, pooled.double()


def crop_to_digit(frames: torch.Tensor, threshold: float = 0.3) -> torch.Tensor:
    """Each frame ``(N, 3, H, W)`` in [0, 1] cropped to the square around its bright pixels and resized back.

    The judge is trained on digits that fill the image; a moving digit covers part of its canvas, so the CCT reads
    real moving-digit frames as it reads training digits only after this crop (held-out frames: 0.36 agreement
    uncropped, 0.99 cropped). Frames without a pixel above ``threshold`` are returned unchanged.
    """
    height, width = frames.shape[-2:]
    cropped = []
    for frame in frames:
        bright = frame.mean(0) > threshold
        if not bright.any():
            cropped.append(frame)
            continue
        rows, columns = bright.any(1).nonzero().flatten(), bright.any(0).nonzero().flatten()
        top, bottom, left, right = (
            rows[0].item(),
            rows[-1].item() + 1,
            columns[0].item(),
            columns[-1].item() + 1,
        )
        side = max(bottom - top, right - left)
        top, left = round((top + bottom - side) / 2), round((left + right - side) / 2)
        padded = torch.nn.functional.pad(frame, (side, side, side, side))  # a square may reach past the canvas
        square = padded[:, top + side : top + 2 * side, left + side : left + 2 * side]
        cropped.append(
            torch.nn.functional.interpolate(square[None], size=(height, width), mode="bilinear", antialias=True)[0]
        )
    return torch.stack(cropped)


def frechet(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    statistics = []
    for features in (features_1, features_2):
        accumulated = FeatureStatistics()
        accumulated.update(features)
        statistics.append(accumulated)
    return frechet_distance(statistics[0].mean, statistics[0].covariance, statistics[1].mean, statistics[1].covariance)


def mean_pairwise_distance(features: torch.Tensor) -> float:
    distances = torch.cdist(features, features)
    count = features.shape[0]
    return float(distances.sum() / (count * (count - 1)))


def within_class_spread(
    features: torch.Tensor, labels: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor
) -> float:
    """Mean over classes of (pairwise distance among samples) / (pairwise distance among real digits)."""
    ratios = [
        mean_pairwise_distance(features[labels == digit]) / mean_pairwise_distance(real[real_labels == digit])
        for digit in range(NUM_CLASSES)
    ]
    return float(np.mean(ratios))


def real_digit_features(judge: DigitJudge) -> tuple[torch.Tensor, torch.Tensor]:
    """CCT features and labels of the held-out digits (32 px, the split the CCT and ViTok never trained on)."""
    test_split = load_digits_dataset(image_size=32)["test"]
    pixels = torch.stack([torch.from_numpy(np.array(image.convert("RGB"))) for image in test_split["image"]])
    _, features = judge(pixels.permute(0, 3, 1, 2).float() / 255)
    return features, torch.tensor(test_split["label"])


def class_agreement(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return round(float((predicted == labels).float().mean()), 4)
