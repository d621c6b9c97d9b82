"""The demo's CCT as the judge of generated digits, with the package's metrics.

* ``class_agreement`` (:class:`hf_compact.metrics.ClassAgreement`): the share of samples (frames) the CCT assigns
  to their conditioning digit;
* ``frechet_cct_distance`` (:class:`hf_compact.metrics.FrechetDistance`): the Fréchet distance between CCT features
  (the input of its classification head) of the samples and of half of the held-out real digits, next to the
  distance between the two real halves (no Inception weights offline, so the demo's own classifier is the feature
  network);
* ``within_class_spread``: the mean pairwise feature distance of the samples of one class over that of real digits
  of the class (averaged over classes): near 0 means copies, 1 means as varied as real digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hf_compact.data import load_digits_dataset
from hf_compact.metrics import ClassAgreement, FeatureStatistics, FrechetDistance, frechet_distance
from hf_compact.metrics.class_agreement import PretrainedImageClassifier

NUM_CLASSES = 10
DIGIT_NAMES = [str(digit) for digit in range(NUM_CLASSES)]


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
        top, bottom = rows[0].item(), rows[-1].item() + 1
        left, right = columns[0].item(), columns[-1].item() + 1
        side = max(bottom - top, right - left)
        top, left = round((top + bottom - side) / 2), round((left + right - side) / 2)
        padded = torch.nn.functional.pad(frame, (side, side, side, side))  # a square may reach past the canvas
        square = padded[:, top + side : top + 2 * side, left + side : left + 2 * side]
        cropped.append(
            torch.nn.functional.interpolate(square[None], size=(height, width), mode="bilinear", antialias=True)[0]
        )
    return torch.stack(cropped)


def mean_pairwise_distance(features: torch.Tensor) -> float:
    count = features.shape[0]
    return float(torch.cdist(features, features).sum() / (count * (count - 1)))


class DigitJudge:
    """The demo's CCT (a saved ``CCTForImageClassification`` folder) judging digits ``(N, 3, H, W)`` in [0, 1].

    The held-out digits (32 px, the split the CCT and the ViToks never trained on) are split in two random halves
    (seed 0): the first is the reference of the Fréchet distance, the second measures the distance between real
    halves.
    """

    def __init__(self, classifier_path: str | Path) -> None:
        self.classifier = PretrainedImageClassifier(classifier_path)
        test_split = load_digits_dataset(image_size=32)["test"]
        pixels = torch.stack([torch.from_numpy(np.array(image.convert("RGB"))) for image in test_split["image"]])
        self.real_features = self.classifier.features(pixels.permute(0, 3, 1, 2).float() / 255)
        self.real_labels = torch.tensor(test_split["label"])
        order = torch.randperm(len(self.real_labels), generator=torch.Generator().manual_seed(0))
        half = len(order) // 2
        self.reference = FeatureStatistics()
        self.reference.update(self.real_features[order[:half]])
        self.other_half = FeatureStatistics()
        self.other_half.update(self.real_features[order[half:]])

    def real_halves_distance(self) -> float:
        """Fréchet CCT distance between the two halves of the real held-out digits."""
        return frechet_distance(
            self.other_half.mean, self.other_half.covariance, self.reference.mean, self.reference.covariance
        )

    def agreement(self, samples: torch.Tensor, labels: torch.Tensor) -> float:
        """Class agreement of images ``(N, 3, H, W)`` or clips ``(N, T, 3, H, W)`` (every frame counts)."""
        metric = ClassAgreement(self.classifier, DIGIT_NAMES, self.classifier.class_names)
        return round(metric.compute(predictions=samples, references=labels)["class_agreement"], 4)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> dict:
        """``class_agreement``, ``frechet_cct_distance`` and ``within_class_spread`` of images with their labels."""
        frechet = FrechetDistance(self.classifier.features, reference_statistics=self.reference)
        features = self.classifier.features(images)
        spread = np.mean(
            [
                mean_pairwise_distance(features[labels == digit])
                / mean_pairwise_distance(self.real_features[self.real_labels == digit])
                for digit in range(NUM_CLASSES)
            ]
        )
        return {
            "class_agreement": self.agreement(images, labels),
            "frechet_cct_distance": round(frechet.compute(predictions=images)["frechet_distance"], 2),
            "within_class_spread": round(float(spread), 3),
        }

    def clip_agreement(self, clips: torch.Tensor, labels: torch.Tensor) -> float:
        """Per-frame class agreement of clips ``(N, T, 3, H, W)``, each frame cropped to its digit first."""
        cropped = crop_to_digit(clips.flatten(0, 1)).reshape(clips.shape)
        return self.agreement(cropped, labels)
