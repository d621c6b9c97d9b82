"""An attention implementation for CPU training with attention dropout, opt-in through transformers' registry.

PyTorch's SDPA has no fused CPU kernel with dropout: it falls back to its unfused "math" path. `register()` adds
`"cpu_dropout"` to `transformers.AttentionInterface`; a model built or loaded with `attn_implementation="cpu_dropout"`
(or switched with `model.set_attn_implementation("cpu_dropout")`) then runs `DropoutAttentionFunction` where it
applies (training with dropout on the CPU, no mask, no autocast, not under `torch.compile`, a non-empty batch) and
transformers' `"sdpa"` everywhere else. Nothing changes for a model that does not ask for it.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

NAME = "cpu_dropout"


class DropoutAttentionFunction(torch.autograd.Function):
    """Multi-head attention with dropout on the probabilities, forward and backward written out per head.

    Same math as SDPA: `softmax(q k^T * scaling)` per head, each probability kept with probability `1 - dropout_prob`
    and rescaled by `1 / (1 - dropout_prob)`, times `v`. The keep mask is drawn by one `bernoulli_` call over a
    `(batch, heads, num_tokens, num_tokens)` tensor, as SDPA and `"eager"` draw it, so a seeded run drops the same
    probabilities. What it saves over SDPA's math path:

    - no copies of the heads: every head's `q`, `k`, `v` is a strided slice of the inputs (views of a fused `qkv`
      projection in CCT), and the products write straight into slices of the output and of the gradients;
    - the scalings (`scaling`, `1 / (1 - dropout_prob)`) ride on the matmuls (`alpha`), not on extra passes;
    - the mask reuses the scores' buffer and is multiplied into it in place; the backward keeps `p` and `p * mask`
      only, with the softmax gradient `p * (dP - rowsum(p * dP)) = t - p * rowsum(t)`, `t = (p * mask) * dP'`
      (`dP'` the gradient of the dropped probabilities).

    `query`, `key`, `value` `(batch, heads, num_tokens, head_dim)` -> `(batch, num_tokens, heads, head_dim)`, the
    layout transformers' attention functions return.
    """

    @staticmethod
    def forward(ctx, query, key, value, dropout_prob: float, scaling: float) -> torch.Tensor:
        batch_size, num_heads, num_tokens, head_dim = query.shape
        keep_prob = 1.0 - dropout_prob
        ignored = query.new_zeros(()).expand(1, 1, 1)  # the `input` of baddbmm, ignored with beta=0
        scores = query.new_empty(batch_size, num_heads, num_tokens, num_tokens)
        for head in range(num_heads):
            torch.baddbmm(
                ignored, query[:, head], key[:, head].transpose(1, 2), beta=0.0, alpha=scaling, out=scores[:, head]
            )
        probs = torch.softmax(scores, dim=-1)
        dropped = scores.bernoulli_(keep_prob).mul_(probs)
        output = query.new_empty(batch_size, num_tokens, num_heads, head_dim)
        for head in range(num_heads):
            torch.baddbmm(
                ignored, dropped[:, head], value[:, head], beta=0.0, alpha=1.0 / keep_prob, out=output[:, :, head]
            )
        ctx.save_for_backward(query, key, value, probs, dropped)
        ctx.keep_prob, ctx.scaling = keep_prob, scaling
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        query, key, value, probs, dropped = ctx.saved_tensors
        keep_prob, scaling = ctx.keep_prob, ctx.scaling
        batch_size, num_heads, num_tokens, head_dim = query.shape
        # One buffer for the three gradients, in the layout of a fused qkv projection.
        grads = query.new_empty(batch_size, num_tokens, 3, num_heads, head_dim)
        grad_query, grad_key, grad_value = grads.permute(2, 0, 3, 1, 4).unbind(0)
        grad_scores = torch.empty_like(probs)
        ignored = query.new_zeros(()).expand(1, 1, 1)
        for head in range(num_heads):
            grad_head = grad_output[:, :, head]
            torch.baddbmm(
                ignored,
                dropped[:, head].transpose(1, 2),
                grad_head,
                beta=0.0,
                alpha=1.0 / keep_prob,
                out=grad_value[:, head],
            )
            torch.baddbmm(
                ignored,
                grad_head,
                value[:, head].transpose(1, 2),
                beta=0.0,
                alpha=1.0 / keep_prob,
                out=grad_scores[:, head],
            )
        grad_scores.mul_(dropped)
        grad_scores.addcmul_(probs, grad_scores.sum(dim=-1, keepdim=True), value=-1.0)
        for head in range(num_heads):
            torch.baddbmm(
                ignored, grad_scores[:, head], key[:, head], beta=0.0, alpha=scaling, out=grad_query[:, head]
            )
            torch.baddbmm(
                ignored,
                grad_scores[:, head].transpose(1, 2),
                query[:, head],
                beta=0.0,
                alpha=scaling,
                out=grad_key[:, head],
            )
        return grad_query, grad_key, grad_value, None, None


def cpu_dropout_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """An `AttentionInterface` function: `DropoutAttentionFunction` where it applies, transformers' SDPA otherwise."""
    applies = (
        dropout > 0.0
        and attention_mask is None
        and query.device.type == "cpu"
        and query.shape[0] > 0
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and not kwargs.get("output_attentions", False)
    )
    if not applies:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    return DropoutAttentionFunction.apply(query, key, value, dropout, scaling), None


def register() -> str:
    """Registers the implementation with transformers and returns its name, for `attn_implementation=`."""
    AttentionInterface.register(NAME, cpu_dropout_attention)
    return NAME
