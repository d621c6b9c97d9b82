"""Rotary position embeddings (RoPE) for 1-D sequences and axial N-D grids.

A RoPE table is built in two steps:

1. positions -> angles: :func:`rotary_angles` maps integer positions ``(N, num_axes)`` to rotation angles
   ``(N, head_dim // 2)``. Axis ``a`` owns ``axis_dims[a]`` consecutive channels of each head
   (``axis_dims[a] // 2`` rotation pairs) with inverse frequencies
   ``theta ** (-2k / axis_dims[a])``, ``k = 0 .. axis_dims[a] // 2 - 1``.
2. :func:`apply_rotary_embedding` rotates **interleaved** adjacent channel pairs ``(2i, 2i + 1)`` of q/k by
   angle ``i`` (GPT-J / Llama-complex layout, not the NeoX half split).

The three layouts used by ViTok are special cases:

* ``"1d"`` (ViTok-v1 released code): one axis, the flattened raster index; ``axis_dims=(head_dim,)``.
* ``"axial"`` (ViTok-v1 paper, "3D axial RoPE"): axes ``(t, h, w)`` with :func:`axial_split` of the head dim.
* ``"2d"`` (ViTok-v2): axes ``(row, col)``, ``axis_dims=(head_dim // 2, head_dim // 2)``, so each axis has
  ``head_dim / 4`` frequencies with exponent ``-2k / (head_dim / 2)`` and the row angles come first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ROPE_TYPES = ("1d", "axial", "2d")


def grid_positions(grid_size: Sequence[int], device: torch.device | str | None = None) -> torch.Tensor:
    """Integer coordinates of every cell of a grid in raster (row-major) order.

    Args:
        grid_size: number of cells per axis, e.g. ``(t, h, w)``.

    Returns:
        ``(prod(grid_size), len(grid_size))`` int64 tensor; row ``n`` holds the coordinates of token ``n``.
    """
    axes = [torch.arange(size, device=device) for size in grid_size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(grid_size))


def axial_split(head_dim: int, num_axes: int) -> tuple[int, ...]:
    """Splits ``head_dim`` channels into ``num_axes`` even-sized axial chunks, as equal as possible.

    Remaining pairs go to the last axes (the spatial ones for ``(t, h, w)``): 64 -> (20, 22, 22),
    72 -> (24, 24, 24).
    """
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for rotary embeddings, got {head_dim}")
    num_pairs = head_dim // 2
    if num_pairs < num_axes:
        raise ValueError(f"head_dim={head_dim} is too small for {num_axes} rotary axes")
    base, remainder = divmod(num_pairs, num_axes)
    return tuple(2 * (base + (axis >= num_axes - remainder)) for axis in range(num_axes))


def rotary_angles(positions: torch.Tensor, axis_dims: Sequence[int], theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles for (possibly multi-axis) positions, computed in float32.

    Args:
        positions: ``(N,)`` or ``(N, num_axes)`` positions (integers or floats).
        axis_dims: channels per axis (each even); their sum is the head dim.
        theta: RoPE base.

    Returns:
        ``(N, sum(axis_dims) // 2)`` float32 angles, axis 0's angles first.
    """
    if positions.ndim == 1:
        positions = positions[:, None]
    if positions.shape[-1] != len(axis_dims):
        raise ValueError(
            f"positions has {positions.shape[-1]} axes but axis_dims {tuple(axis_dims)} has {len(axis_dims)}"
        )
    angles = []
    for axis, axis_dim in enumerate(axis_dims):
        if axis_dim % 2:
            raise ValueError(f"every entry of axis_dims must be even, got {tuple(axis_dims)}")
        exponents = torch.arange(0, axis_dim, 2, device=positions.device, dtype=torch.float32) / axis_dim
        inv_freq = theta**-exponents
        angles.append(positions[:, axis].float()[:, None] * inv_freq[None, :])
    return torch.cat(angles, dim=-1)


def rotary_axis_dims(rope_type: str, head_dim: int) -> tuple[int, ...]:
    """Per-axis channel split for a named RoPE layout (see module docstring)."""
    if rope_type == "1d":
        return (head_dim,)
    if rope_type == "axial":
        return axial_split(head_dim, 3)
    if rope_type == "2d":
        if head_dim % 4:
            raise ValueError(f"rope_type='2d' needs head_dim divisible by 4, got {head_dim}")
        return (head_dim // 2, head_dim // 2)
    raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}")


def rotary_cos_sin(
    rope_type: str,
    grid_size: Sequence[int],
    head_dim: int,
    theta: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for the tokens of a ``(t, h, w)`` grid in raster order.

    Args:
        rope_type: ``"1d"`` (raster index), ``"axial"`` (t, h, w) or ``"2d"`` (h, w; needs ``t == 1``).
        grid_size: ``(t, h, w)`` token grid.
        head_dim: channels per attention head.
        theta: RoPE base.
        dtype: dtype of the returned tables (angles are always computed in float32).

    Returns:
        ``(cos, sin)``, each ``(t * h * w, head_dim // 2)``.
    """
    t, h, w = grid_size
    if rope_type == "1d":
        positions = torch.arange(t * h * w, device=device)
    elif rope_type == "axial":
        positions = grid_positions((t, h, w), device=device)
    elif rope_type == "2d":
        if t != 1:
            raise ValueError(f"rope_type='2d' supports single frames only, got {t} latent frames")
        positions = grid_positions((h, w), device=device)
    else:
        raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}")
    angles = rotary_angles(positions, rotary_axis_dims(rope_type, head_dim), theta)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary_embedding(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates interleaved channel pairs of ``x`` by the given angles.

    For each pair ``(a, b) = (x[..., 2i], x[..., 2i + 1])``: ``a' = a cos - b sin``, ``b' = a sin + b cos``.
    The rotation runs in ``x``'s dtype (the tables are cast to it).

    Args:
        x: ``(B, heads, N, head_dim)`` queries or keys.
        cos, sin: ``(N, head_dim // 2)`` (or broadcastable to ``(B, heads, N, head_dim // 2)``).

    Returns:
        Tensor of the same shape and dtype as ``x``.
    """
    if x.shape[-1] != 2 * cos.shape[-1]:
        raise ValueError(f"rotary tables cover {2 * cos.shape[-1]} channels but x has head_dim {x.shape[-1]}")
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    pairs = x.unflatten(-1, (-1, 2))
    first, second = pairs.unbind(-1)
    rotated = torch.stack((first * cos - second * sin, first * sin + second * cos), dim=-1)
    return rotated.flatten(-2)
