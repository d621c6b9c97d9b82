"""Measure the standard deviation of an autoencoder's latents, to set ``config.scaling_factor``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def compute_latent_std(
    vae,
    batches: Iterable[torch.Tensor | Mapping[str, torch.Tensor]],
    input_key: str = "pixel_values",
    sample_posterior: bool = True,
    max_batches: int | None = None,
    generator: torch.Generator | None = None,
    show_progress: bool = True,
) -> float:
    """Standard deviation of all latent elements of ``vae`` over ``batches``.

    Diffusion models train best on unit-variance latents; set the result with
    ``vae.register_to_config(scaling_factor=1 / std)`` (the ViTok paper itself uses raw latents, i.e. 1.0).

    Args:
        vae: any model with the ``AutoencoderKL`` ``encode(x).latent_dist`` API.
        batches: pixel batches ``(B, C, H, W)`` / ``(B, C, T, H, W)`` in ``[-1, 1]``, or dicts holding them under
            ``input_key`` (e.g. a ``datasets`` / ``DataLoader`` stream).
        input_key: key of the pixels in dict batches.
        sample_posterior: measure posterior samples (what a diffusion model is trained on) instead of means.
        max_batches: stop after this many batches.
        generator: random generator for the posterior samples.
        show_progress: show a tqdm bar.

    Returns:
        The standard deviation (float64 accumulation) over every latent element seen.
    """
    count, total, total_sq = 0, 0.0, 0.0
    parameter = next(vae.parameters())
    for index, batch in enumerate(tqdm(batches, desc="latent std", total=max_batches, disable=not show_progress)):
        if max_batches is not None and index >= max_batches:
            break
        if isinstance(batch, Mapping) and input_key not in batch:
            raise ValueError(
                f"dict batches must hold the pixels under input_key={input_key!r}, got keys {sorted(batch)}"
            )
        pixels = batch[input_key] if isinstance(batch, Mapping) else batch
        if not isinstance(pixels, torch.Tensor):
            raise TypeError(f"batches must yield tensors or dicts with {input_key!r}, got {type(pixels).__name__}")
        posterior = vae.encode(pixels.to(device=parameter.device, dtype=parameter.dtype)).latent_dist
        latents = (posterior.sample(generator=generator) if sample_posterior else posterior.mode()).double()
        count += latents.numel()
        total += latents.sum().item()
        total_sq += latents.square().sum().item()
    if count < 2:
        raise ValueError("batches must provide at least two latent values to measure a standard deviation")
    mean = total / count
    return max(total_sq / count - mean * mean, 0.0) ** 0.5 * (count / (count - 1)) ** 0.5
