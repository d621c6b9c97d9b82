"""The CPU helpers of `benchmarks/cct_throughput.py` (outside the package): the opt-in `"cpu_dropout"` attention
implementation and the argument check of the glibc setting that keeps freed memory for reuse."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import AttentionInterface

from hf_compact import CCTConfig, CCTForImageClassification

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from cpu_helpers import dropout_attention  # noqa: E402
from cpu_helpers.freed_memory import keep_freed_cpu_memory  # noqa: E402


def test_dropout_attention_function_matches_reference_attention_with_the_same_mask():
    batch_size, num_tokens, num_heads, head_dim, dropout_prob = 3, 7, 2, 4, 0.3
    qkv = torch.randn(batch_size, num_tokens, 3 * num_heads * head_dim, dtype=torch.float64, requires_grad=True)
    grad_output = torch.randn(batch_size, num_tokens, num_heads, head_dim, dtype=torch.float64)
    # As CCT's attention passes them: strided views of one fused projection, (batch, heads, tokens, head_dim).
    query, key, value = qkv.view(batch_size, num_tokens, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    torch.manual_seed(7)
    output = dropout_attention.DropoutAttentionFunction.apply(query, key, value, dropout_prob, head_dim**-0.5)
    (grad_qkv,) = torch.autograd.grad(output, qkv, grad_output)

    # Reference: the textbook formula, the keep mask drawn by the same bernoulli_ call on the same shape.
    torch.manual_seed(7)
    probs = (query @ key.transpose(-1, -2) * head_dim**-0.5).softmax(-1)
    keep_mask = torch.empty_like(probs).bernoulli_(1 - dropout_prob)
    assert 0 < keep_mask.sum() < keep_mask.numel()
    expected = (probs * keep_mask / (1 - dropout_prob) @ value).transpose(1, 2)
    (expected_grad,) = torch.autograd.grad(expected, qkv, grad_output)

    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(grad_qkv, expected_grad)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(AttentionInterface, "_global_mapping", dict(AttentionInterface._global_mapping))
    return dropout_attention.register()


def test_the_kernel_runs_only_for_a_model_that_asks_for_it_and_gives_sdpa_gradients(registered, monkeypatch):
    calls = []
    original_apply = dropout_attention.DropoutAttentionFunction.apply
    monkeypatch.setattr(
        dropout_attention.DropoutAttentionFunction, "apply", lambda *args: calls.append(1) or original_apply(*args)
    )
    config = CCTConfig(
        image_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_labels=3,
        attention_probs_dropout_prob=0.5, drop_path_rate=0.3,
    )  # fmt: skip
    torch.manual_seed(0)
    model = CCTForImageClassification(config).train()
    pixel_values, labels = torch.randn(2, 3, 16, 16), torch.tensor([0, 2])

    def loss_and_gradients():
        model.zero_grad()
        torch.manual_seed(3)
        loss = model(pixel_values, labels=labels).loss
        loss.backward()
        return loss.detach(), [parameter.grad.clone() for parameter in model.parameters()]

    sdpa_loss, sdpa_gradients = loss_and_gradients()
    assert calls == []  # registered, but the model uses its default "sdpa"
    model.set_attn_implementation(registered)
    kernel_loss, kernel_gradients = loss_and_gradients()
    assert len(calls) == config.num_hidden_layers
    torch.testing.assert_close(kernel_loss, sdpa_loss)
    for gradient, expected in zip(kernel_gradients, sdpa_gradients, strict=True):
        torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        model.eval()(pixel_values)  # no dropout: transformers' SDPA
    assert len(calls) == config.num_hidden_layers


def test_keep_freed_cpu_memory_rejects_a_non_positive_threshold():
    with pytest.raises(ValueError, match="mmap_threshold_bytes: expected a positive number of bytes, got 0"):
        keep_freed_cpu_memory(0)
