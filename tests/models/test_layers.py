"""Numerical checks of the shared building blocks in ``hf_compact.layers``."""

import math

import pytest
import torch
from torch.nn import functional as F

from hf_compact.layers import (
    Attention,
    GatedMlp,
    Mlp,
    RMSNorm,
    TransformerBlock,
    apply_rotary_embedding,
    axial_split,
    build_mlp,
    build_norm,
    grid_positions,
    rotary_angles,
    rotary_cos_sin,
)


def test_rmsnorm_math_and_float32_compute():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8) * 3
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 8))
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    # bf16 input: computed in float32, cast back
    out_bf16 = norm(x.bfloat16())
    assert out_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(out_bf16, norm(x.bfloat16().float()).bfloat16())
    assert RMSNorm(8, elementwise_affine=False).weight is None


def test_build_norm_variants_and_bad_name():
    assert isinstance(build_norm("layer", 4), torch.nn.LayerNorm)
    assert build_norm("layer", 4, elementwise_affine=False).weight is None
    assert isinstance(build_norm("rms", 4), RMSNorm)
    with pytest.raises(ValueError, match="norm_type"):
        build_norm("batch", 4)


def test_grid_positions_raster_order():
    positions = grid_positions((2, 3))
    assert positions.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]


def test_axial_split_and_v2_2d_frequencies():
    assert axial_split(64, 3) == (20, 22, 22)
    assert axial_split(72, 3) == (24, 24, 24)
    # v2 2-D: hd=64 -> 16 freqs per axis, inv_freq[k] = 10000^(-k/16); row first, then col
    cos, sin = rotary_cos_sin("2d", (1, 2, 3), head_dim=64)
    angles = torch.atan2(sin, cos)
    inv_freq = 10000.0 ** (-torch.arange(16) / 16)
    row, col = 1, 2  # token 5
    expected = torch.cat([row * inv_freq, col * inv_freq])
    torch.testing.assert_close(angles[5], torch.atan2(expected.sin(), expected.cos()))
    # v1 "1d": position = raster index, inv_freq_i = 10000^(-2i/hd)
    angles_1d = rotary_angles(torch.arange(6), (64,))
    torch.testing.assert_close(angles_1d[5], 5 * 10000.0 ** (-torch.arange(0, 64, 2) / 64))


def test_rope_preserves_norm_and_is_relative():
    torch.manual_seed(0)
    head_dim = 16
    q = torch.randn(1, 1, 1, head_dim)
    k = torch.randn(1, 1, 1, head_dim)
    angles = rotary_angles(torch.arange(12), (head_dim,))
    cos, sin = angles.cos(), angles.sin()
    q_all = apply_rotary_embedding(q.expand(1, 1, 12, head_dim), cos, sin)
    k_all = apply_rotary_embedding(k.expand(1, 1, 12, head_dim), cos, sin)
    torch.testing.assert_close(q_all.norm(dim=-1), q.norm(dim=-1).expand(1, 1, 12))
    scores = q_all[0, 0] @ k_all[0, 0].T  # (12, 12): depends only on i - j
    torch.testing.assert_close(scores[3, 1], scores[7, 5])
    torch.testing.assert_close(scores[10, 2], scores[8, 0])
    assert not torch.allclose(scores[3, 1], scores[3, 2])


def test_rope_interleaved_pairs():
    x = torch.zeros(1, 1, 1, 4)
    x[..., 0] = 1.0  # pair 0 = (1, 0)
    cos = torch.tensor([[math.cos(0.3), 1.0]])
    sin = torch.tensor([[math.sin(0.3), 0.0]])
    out = apply_rotary_embedding(x, cos, sin)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([math.cos(0.3), math.sin(0.3), 0.0, 0.0]))
    with pytest.raises(ValueError, match="head_dim"):
        apply_rotary_embedding(torch.zeros(1, 1, 1, 6), cos, sin)


def test_rotary_cos_sin_2d_rejects_video_and_bad_type():
    with pytest.raises(ValueError, match="single frames"):
        rotary_cos_sin("2d", (2, 2, 2), head_dim=16)
    with pytest.raises(ValueError, match="rope_type"):
        rotary_cos_sin("3d", (1, 2, 2), head_dim=16)


def test_gated_mlp_halves_and_layouts():
    torch.manual_seed(0)
    x = torch.randn(3, 8)
    fused = GatedMlp(8, 6, bias=False, activation="silu", fused=True)
    value_weight, gate_weight = fused.in_proj.weight.chunk(2, dim=0)
    expected = (F.silu(x @ gate_weight.T) * (x @ value_weight.T)) @ fused.out_proj.weight.T
    torch.testing.assert_close(fused(x), expected)
    geglu = build_mlp("geglu", 8, 6)
    expected = geglu.out_proj(F.gelu(geglu.gate_proj(x)) * geglu.value_proj(x))
    torch.testing.assert_close(geglu(x), expected)
    plain = Mlp(8, 6)
    torch.testing.assert_close(plain(x), plain.fc2(F.gelu(plain.fc1(x))))
    with pytest.raises(ValueError, match="mlp_type"):
        build_mlp("relu_glu", 8, 6)


def test_attention_matches_manual_softmax_with_qk_norm_rope_and_mask():
    torch.manual_seed(0)
    dim, heads, tokens = 16, 2, 5
    attn = Attention(dim, heads, qkv_bias=True, qk_norm="rms")
    x = torch.randn(2, tokens, dim)
    cos, sin = rotary_cos_sin("1d", (1, 1, tokens), head_dim=dim // heads)
    mask = torch.ones(tokens, tokens, dtype=torch.bool)
    mask[:, -1] = False
    q, k, v = attn.qkv(x).view(2, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    q = apply_rotary_embedding(attn.norm_q(q), cos, sin)
    k = apply_rotary_embedding(attn.norm_k(k), cos, sin)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dim // heads)
    scores = scores.masked_fill(~mask, float("-inf"))
    expected = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, tokens, dim))
    torch.testing.assert_close(attn(x, rotary=(cos, sin), attention_mask=mask), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        Attention(10, 3)


def test_parallel_block_formula_and_sequential_block_formula():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 16)
    parallel = TransformerBlock(
        16,
        2,
        24,
        block_type="parallel",
        norm_type="rms",
        norm_eps=1e-6,
        mlp_type="swiglu_fused",
        mlp_bias=False,
        attn_out_bias=False,
        qk_norm="rms",
        layer_scale_init=0.5,
    )
    normed = parallel.norm1(x)
    torch.testing.assert_close(parallel(x), x + 0.5 * (parallel.attn(normed) + parallel.mlp(normed)))
    assert not hasattr(parallel, "norm2")
    sequential = TransformerBlock(16, 2, 24)
    hidden = x + sequential.attn(sequential.norm1(x))
    torch.testing.assert_close(sequential(x), hidden + sequential.mlp(sequential.norm2(hidden)))
    with pytest.raises(ValueError, match="block_type"):
        TransformerBlock(16, 2, 24, block_type="hybrid")


def count_forward_calls(module: torch.nn.Module) -> list[int]:
    """A one-element counter that a forward pre-hook on ``module`` increments on every call (a pre-hook, as the
    recomputation of a checkpointed forward stops as soon as it has what backward needs)."""
    calls = [0]
    module.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_block_gradient_checkpointing_recomputes_in_backward_with_the_same_gradients():
    torch.manual_seed(0)
    block = TransformerBlock(16, 2, 24)
    attention_calls = count_forward_calls(block.attn)
    x = torch.randn(2, 4, 16, requires_grad=True)
    block(x).square().sum().backward()
    assert attention_calls[0] == 1  # without checkpointing the block runs once
    reference = [p.grad.clone() for p in block.parameters()] + [x.grad.clone()]
    block.zero_grad()
    x.grad = None

    block.gradient_checkpointing = True
    output = block(x)
    assert attention_calls[0] == 2  # forward
    output.square().sum().backward()
    assert attention_calls[0] == 3  # the activations were dropped and recomputed in backward
    for expected, got in zip(reference, [p.grad for p in block.parameters()] + [x.grad]):
        torch.testing.assert_close(got, expected)
    with torch.no_grad():  # nothing to checkpoint without autograd
        block(x)
    assert attention_calls[0] == 4
