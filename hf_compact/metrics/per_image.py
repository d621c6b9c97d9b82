"""Streaming mean of a per-image score with the ``evaluate.Metric`` protocol, computed in torch.

``evaluate.Metric`` stores inputs in Arrow tables typed by ``datasets.Features``, which suits labels but not
image tensors; these metrics keep its calling convention (``add_batch(predictions=, references=)``,
``add``, ``compute``) and keep only a running sum on the device.
"""

from __future__ import annotations

import torch

from ..utils import fold_frames_into_batch


class PerImageMeanMetric:
    """Mean over images (video frames count as images) of ``score(prediction, reference)``.

    Args:
        value_range: (low, high) range of the pixel values; inputs are mapped to [0, 1], predictions clamped.
    """

    name: str = ""

    def __init__(self, value_range: tuple[float, float] = (-1.0, 1.0)):
        low, high = value_range
        if not high > low:
            raise ValueError(f"value_range: expected (low, high) with high > low, got {value_range}.")
        self.value_range = (float(low), float(high))
        self.reset()

    def reset(self) -> None:
        self.score_sum = 0.0
        self.num_images = 0

    def score(self, predictions: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images in [0, 1] -> (N,) scores."""
        raise NotImplementedError

    def add_batch(self, *, predictions: torch.Tensor, references: torch.Tensor) -> None:
        """Add (B, C, H, W) images or (B, C, T, H, W) videos; ``references`` has the same shape."""
        if not isinstance(predictions, torch.Tensor) or not isinstance(references, torch.Tensor):
            raise TypeError(
                f"predictions, references: expected torch.Tensors, got {type(predictions).__name__} and "
                f"{type(references).__name__}."
            )
        if predictions.shape != references.shape:
            raise ValueError(
                f"predictions: expected the shape of references {tuple(references.shape)}, "
                f"got {tuple(predictions.shape)}."
            )
        low, high = self.value_range
        predictions = ((fold_frames_into_batch(predictions).float() - low) / (high - low)).clamp(0.0, 1.0)
        references = ((fold_frames_into_batch(references).float() - low) / (high - low)).clamp(0.0, 1.0)
        scores = self.score(predictions, references)
        self.score_sum += scores.double().sum().item()
        self.num_images += scores.numel()

    def add(self, *, prediction: torch.Tensor, reference: torch.Tensor) -> None:
        """Add one (C, H, W) image or (C, T, H, W) video."""
        self.add_batch(predictions=prediction.unsqueeze(0), references=reference.unsqueeze(0))

    def compute(
        self, *, predictions: torch.Tensor | None = None, references: torch.Tensor | None = None
    ) -> dict[str, float]:
        """``{name: mean score}`` over everything added (plus the optional last batch); then resets."""
        if predictions is not None or references is not None:
            self.add_batch(predictions=predictions, references=references)
        if self.num_images == 0:
            raise ValueError(f"{type(self).__name__}.compute: expected at least one image added, got none.")
        result = {self.name: self.score_sum / self.num_images}
        self.reset()
        return result
