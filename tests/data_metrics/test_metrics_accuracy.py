"""hf_compact.metrics.Accuracy against scikit-learn's accuracy_score / top_k_accuracy_score."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, top_k_accuracy_score

from hf_compact import Accuracy


@pytest.fixture
def scores_and_labels():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=200)
    return scores, labels


def test_top_k_from_logits_matches_sklearn(scores_and_labels):
    scores, labels = scores_and_labels
    result = Accuracy(keep_in_memory=True).compute(predictions=scores, references=labels, top_k=(1, 3, 5))
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, scores.argmax(1)))
    for k in (3, 5):
        expected = top_k_accuracy_score(labels, scores, k=k, labels=np.arange(10))
        assert result[f"top_{k}_accuracy"] == pytest.approx(expected)
    assert set(result) == {"accuracy", "top_3_accuracy", "top_5_accuracy"}


def test_label_predictions_and_sample_weight_match_sklearn(scores_and_labels):
    scores, labels = scores_and_labels
    predictions = scores.argmax(1)
    weights = np.random.default_rng(1).uniform(0.1, 2.0, size=len(labels))
    metric = Accuracy(keep_in_memory=True)
    assert metric.compute(predictions=predictions, references=labels)["accuracy"] == pytest.approx(
        accuracy_score(labels, predictions)
    )
    weighted = metric.compute(predictions=scores, references=labels, top_k=3, sample_weight=weights)
    expected = top_k_accuracy_score(labels, scores, k=3, labels=np.arange(10), sample_weight=weights)
    assert weighted["top_3_accuracy"] == pytest.approx(expected)


def test_add_batch_accumulates_like_one_call(scores_and_labels):
    scores, labels = scores_and_labels
    metric = Accuracy(keep_in_memory=True)
    for start in range(0, len(labels), 64):
        metric.add_batch(predictions=scores[start : start + 64], references=labels[start : start + 64])
    accumulated = metric.compute(top_k=(1, 5))
    single = Accuracy(keep_in_memory=True).compute(predictions=scores, references=labels, top_k=(1, 5))
    assert accumulated == pytest.approx(single)


def test_ties_rank_the_lower_class_first():
    metric = Accuracy(keep_in_memory=True)
    # All scores equal: class 0 ranks first, class 1 second.
    result = metric.compute(predictions=[[0.5, 0.5, 0.5]] * 3, references=[0, 1, 2], top_k=(1, 2))
    assert result == {"accuracy": pytest.approx(1 / 3), "top_2_accuracy": pytest.approx(2 / 3)}


@pytest.mark.parametrize(
    ("predictions", "top_k", "message"),
    [
        ([[0.1, 0.9], [0.8, 0.2]], 3, "at most num_classes=2"),
        ([1, 0], 2, "needs class scores"),
        ([[0.1, 0.9], [0.8, 0.2]], 0, "positive int"),
        ([[0.1, 0.9], [0.8, 0.2]], (), "positive int"),
    ],
)
def test_bad_top_k_raises(predictions, top_k, message):
    with pytest.raises(ValueError, match=message):
        Accuracy(keep_in_memory=True).compute(predictions=predictions, references=[1, 0], top_k=top_k)


def test_sample_weight_shape_mismatch_raises():
    with pytest.raises(ValueError, match="sample_weight"):
        Accuracy(keep_in_memory=True).compute(predictions=[1, 0], references=[1, 0], sample_weight=[1.0])


def test_evaluate_accuracy_runs_the_model_over_every_batch_with_its_inputs():
    import torch
    from accelerate import Accelerator
    from transformers.modeling_outputs import SequenceClassifierOutput

    from hf_compact.metrics.accuracy import evaluate_accuracy

    class ScoresFromInputs(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return SequenceClassifierOutput(logits=(input_ids * attention_mask).float())

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 100, (10, 6))
    labels = rng.integers(0, 6, 10)
    batches = [
        {"input_ids": torch.tensor(scores[i : i + 4]), "attention_mask": torch.ones(len(scores[i : i + 4]), 6,
         dtype=torch.long), "labels": torch.tensor(labels[i : i + 4])}
        for i in range(0, 10, 4)
    ]  # fmt: skip
    model = ScoresFromInputs()
    metrics = evaluate_accuracy(model, batches, Accelerator(cpu=True), 6, ("input_ids", "attention_mask"))
    assert metrics == {
        "accuracy": pytest.approx(accuracy_score(labels, scores.argmax(1))),
        "top_5_accuracy": pytest.approx(top_k_accuracy_score(labels, scores, k=5, labels=range(6))),
    }
    assert model.training  # put back in training mode
