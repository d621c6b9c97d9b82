"""Top-1 / top-k classification accuracy as an ``evaluate.Metric`` that works offline."""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate
import numpy as np
import torch

_DESCRIPTION = """
Fraction of examples whose reference label is among the ``k`` highest-scoring classes (top-k accuracy); with
``k = 1`` and label predictions it is the usual accuracy. Predictions are either class ids (one per example) or
class scores / logits (one row per example).
"""

_INPUTS_DESCRIPTION = """
Args:
    predictions: class ids, shape (num_examples,), or class scores / logits, shape (num_examples, num_classes).
    references: true class ids, shape (num_examples,).
    top_k: an int or a sequence of ints; k > 1 needs scores. Defaults to 1.
    sample_weight: optional per-example weights, shape (num_examples,).
Returns:
    ``accuracy`` (top-1) and ``top_{k}_accuracy`` for every other requested k, each in [0, 1].
Examples:
    >>> metric = Accuracy()
    >>> metric.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], references=[2, 0], top_k=(1, 2))
    {'accuracy': 0.5, 'top_2_accuracy': 1.0}
"""

_LABEL_FEATURES = datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})
_SCORE_FEATURES = datasets.Features(
    {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
)


class Accuracy(evaluate.Metric):
    """Top-k accuracy (``evaluate.Metric``), computed with NumPy; no Hub download needed.

    Use it like any ``evaluate`` metric: ``Accuracy().compute(predictions=logits, references=labels, top_k=(1, 5))``
    or accumulate with ``add_batch`` over an evaluation loop (also across processes, as ``evaluate`` does).
    Matches scikit-learn's ``accuracy_score`` and ``top_k_accuracy_score``, except that ties between scores are
    broken by class index (the lower index ranks first) instead of counted in the reference's favour.
    """

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS_DESCRIPTION,
            features=[_LABEL_FEATURES, _SCORE_FEATURES],
        )

    def _compute(
        self,
        predictions: Sequence,
        references: Sequence,
        top_k: int | Sequence[int] = 1,
        sample_weight: Sequence[float] | None = None,
    ) -> dict[str, float]:
        references = np.asarray(references, dtype=np.int64)
        predictions = np.asarray(predictions)
        top_ks = [top_k] if isinstance(top_k, int) else list(top_k)
        if not top_ks or any(not isinstance(k, int) or k < 1 for k in top_ks):
            raise ValueError(f"top_k: expected a positive int or a non-empty sequence of them, got {top_k!r}.")
        weights = np.ones(len(references)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != references.shape:
            raise ValueError(
                f"sample_weight: expected shape {references.shape} (one weight per reference), got {weights.shape}."
            )
        if predictions.ndim == 1:
            if max(top_ks) > 1:
                raise ValueError(
                    f"top_k: k > 1 needs class scores of shape (num_examples, num_classes) as predictions, got "
                    f"class ids (top_k={top_k!r})."
                )
            ranked_classes = predictions[:, None]
        else:
            num_classes = predictions.shape[1]
            if max(top_ks) > num_classes:
                raise ValueError(f"top_k: expected at most num_classes={num_classes}, got {top_k!r}.")
            # Stable sort of the negated scores: highest score first, ties broken by class index.
            ranked_classes = np.argsort(-predictions, axis=1, kind="stable")[:, : max(top_ks)]
        hits = ranked_classes == references[:, None]
        results = {}
        for k in top_ks:
            correct = hits[:, :k].any(axis=1)
            name = "accuracy" if k == 1 else f"top_{k}_accuracy"
            results[name] = float(np.sum(weights * correct) / np.sum(weights))
        return results


def top_k_for(num_labels: int) -> tuple[int, ...]:
    """The accuracies the recipes report: top-1, and top-5 with at least 5 classes."""
    return (1, 5) if num_labels >= 5 else (1,)


@torch.no_grad()
def evaluate_accuracy(
    model: torch.nn.Module, dataloader, accelerator, num_labels: int, input_names: Sequence[str]
) -> dict[str, float]:
    """:func:`top_k_for` accuracies of ``model`` over the whole (prepared) ``dataloader``, gathered from every process.

    Args:
        model: a classifier whose output has ``logits``; it is put back in training mode afterwards.
        dataloader: batches holding ``labels`` and the ``input_names`` the model takes (e.g. ``("pixel_values",)``
            or ``("input_ids", "attention_mask")``).
        accelerator: the run's ``accelerate.Accelerator`` (its ``gather_for_metrics`` drops the padding of the last
            batch).
    """
    model.eval()
    metric = Accuracy(keep_in_memory=True)
    for batch in dataloader:
        logits = model(**{name: batch[name] for name in input_names}).logits
        logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        metric.add_batch(predictions=logits.float().cpu().numpy(), references=labels.cpu().numpy())
    model.train()
    return metric.compute(top_k=top_k_for(num_labels))


__all__ = ["Accuracy", "evaluate_accuracy", "top_k_for"]
