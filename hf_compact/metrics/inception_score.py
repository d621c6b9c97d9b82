"""Inception Score (gIS) of generated samples with a pluggable classifier network.

IS = exp(E_x[KL(p(y | x) || p(y))]) (Salimans et al., 2016), computed, as in the reference implementation and
torch-fidelity, on ``splits`` equal chunks of the samples and reported as the mean and standard deviation over
the chunks. The classifier is any ``pixels -> logits`` callable: the TorchScript Inception-v3 of the FID code
(:class:`~hf_compact.metrics.TorchScriptFeatureExtractor` returning its logits) for comparable numbers, or a
small in-domain classifier (e.g. a CCT) for a dataset like the digits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def inception_score_from_probabilities(probabilities: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Mean and standard deviation of the Inception Score over ``splits`` chunks of ``(N, K)`` class probabilities."""
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities: expected a (N, K) tensor, got shape {tuple(probabilities.shape)}.")
    if not 1 <= splits <= probabilities.shape[0]:
        raise ValueError(f"splits: expected a value in [1, N={probabilities.shape[0]}], got {splits}.")
    probabilities = probabilities.double()
    scores = []
    for chunk in probabilities.chunk(splits):
        marginal = chunk.mean(dim=0, keepdim=True)
        kl = (chunk * (torch.log(chunk.clamp_min(1e-12)) - torch.log(marginal.clamp_min(1e-12)))).sum(dim=1)
        scores.append(torch.exp(kl.mean()))
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(unbiased=False))


class InceptionScore:
    """Inception Score with the ``evaluate`` calling convention (``add_batch(predictions=)``, ``compute()``).

    Args:
        classifier: ``pixels -> (B, K) logits``.
        splits: number of chunks (10 in the literature).
        name: key prefix of the result (``"gis"``, ``"inception_score"``...).

    Example:
        >>> metric = InceptionScore(classifier, splits=10, name="gis")
        >>> metric.add_batch(predictions=images)   # (B, 3, H, W) in the classifier's input range
        >>> metric.compute()
        {'gis': 9.1, 'gis_std': 0.2}
    """

    def __init__(
        self,
        classifier: Callable[[torch.Tensor], torch.Tensor],
        splits: int = 10,
        name: str = "inception_score",
    ):
        self.classifier = classifier
        self.splits = splits
        self.name = name
        self.probabilities: list[torch.Tensor] = []

    @torch.no_grad()
    def add_batch(self, *, predictions: torch.Tensor) -> None:
        """Classify a batch of generated samples and keep their class probabilities."""
        logits = self.classifier(predictions)
        if logits.ndim != 2 or logits.shape[0] != predictions.shape[0]:
            raise ValueError(
                f"classifier: expected (B={predictions.shape[0]}, K) logits, got shape {tuple(logits.shape)}."
            )
        self.probabilities.append(logits.float().softmax(dim=-1).cpu())

    def compute(self, *, predictions: torch.Tensor | None = None) -> dict[str, float]:
        """``{name: mean, name_std: std}`` over everything added; then resets."""
        if predictions is not None:
            self.add_batch(predictions=predictions)
        if not self.probabilities:
            raise ValueError("InceptionScore: expected samples from add_batch before compute, got none.")
        mean, std = inception_score_from_probabilities(torch.cat(self.probabilities), self.splits)
        self.probabilities = []
        return {self.name: mean, f"{self.name}_std": std}
