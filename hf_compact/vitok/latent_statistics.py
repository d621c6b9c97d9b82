"""The standard deviation of an autoencoder's latents, to set ``config.scaling_factor``.

One definition for the package: the std of what a latent diffusion model is trained on, i.e. of posterior *samples*
``z = mean + std * epsilon`` (``posterior.sample()``, a fresh draw every step, as ViTok's and this package's DiT
training do). It is computed exactly from the posteriors' moments, by the law of total variance,
``Var(z) = Var(mean) + E[var]`` (``Var(mean)`` with Bessel's correction), so no draw is needed and the figure is the
same on every run; for a deterministic autoencoder (``var = 0``) it is the std of the latents themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from tqdm.auto import tqdm


class LatentStatistics:
    """Running std of posterior samples (or of posterior means) over any number of batches, in float64.

    Args:
        sample_posterior: measure posterior samples (what a diffusion model trains on); ``False``: the means only.
    """

    def __init__(self, sample_posterior: bool = True) -> None:
        self.sample_posterior = sample_posterior
        self.count = 0
        self.total = 0.0
        self.total_squares = 0.0
        self.total_variances = 0.0

    def update(self, posterior: DiagonalGaussianDistribution) -> None:
        """Add a batch of posteriors (``mean`` and ``var`` of any shape; ``deterministic`` ones have ``var = 0``)."""
        means = posterior.mean.detach().double()
        self.count += means.numel()
        self.total += means.sum().item()
        self.total_squares += means.square().sum().item()
        if self.sample_posterior and not posterior.deterministic:
            self.total_variances += posterior.var.detach().double().sum().item()

    @property
    def std(self) -> float:
        """Standard deviation over every latent element seen."""
        if self.count < 2:
            raise ValueError(f"LatentStatistics: expected at least two latent values, got {self.count}.")
        mean = self.total / self.count
        variance_of_means = max(self.total_squares / self.count - mean * mean, 0.0) * self.count / (self.count - 1)
        return (variance_of_means + self.total_variances / self.count) ** 0.5


@torch.no_grad()
def compute_latent_std(
    vae,
    batches: Iterable[torch.Tensor | Mapping[str, torch.Tensor]],
    input_key: str = "pixel_values",
    sample_posterior: bool = True,
    max_batches: int | None = None,
    show_progress: bool = True,
) -> float:
    """Standard deviation of the latents of ``vae`` over ``batches`` (see the module docstring for which).

    Diffusion models train best on unit-variance latents; set the result with
    ``vae.register_to_config(scaling_factor=1 / std)`` (the ViTok paper itself uses raw latents, i.e. 1.0).
    ``train_dit.py --latent_scaling auto`` sets the same figure, from its latent cache.

    Args:
        vae: any model with the ``AutoencoderKL`` ``encode(x).latent_dist`` API.
        batches: pixel batches ``(B, C, H, W)`` / ``(B, C, T, H, W)`` in ``[-1, 1]``, or dicts holding them under
            ``input_key`` (e.g. a ``datasets`` / ``DataLoader`` stream).
        input_key: key of the pixels in dict batches.
        sample_posterior: the std of posterior samples (what a diffusion model is trained on, exact from the
            posteriors' moments); ``False``: of the posterior means.
        max_batches: stop after this many batches.
        show_progress: show a tqdm bar.

    Returns:
        The standard deviation (float64 accumulation) over every latent element seen.
    """
    statistics = LatentStatistics(sample_posterior)
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
        statistics.update(vae.encode(pixels.to(device=parameter.device, dtype=parameter.dtype)).latent_dist)
    if statistics.count < 2:
        raise ValueError("batches must provide at least two latent values to measure a standard deviation")
    return statistics.std
