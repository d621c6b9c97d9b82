"""DiT's training objective: epsilon MSE plus the variational bound for a learned-range variance.

Follows ``GaussianDiffusion.training_losses`` of DiT / improved DDPM (Nichol & Dhariwal, 2021) with
``LossType.MSE``, ``ModelMeanType.EPSILON`` and ``ModelVarType.LEARNED_RANGE``: the model outputs ``2c`` channels,
``[epsilon | v]``; the log-variance is ``frac * log(beta_t) + (1 - frac) * log(posterior_variance_t)`` with
``frac = (v + 1) / 2``, exactly what diffusers' ``DDPMScheduler(variance_type="learned_range")`` samples with. The
variational term trains only the variance (the predicted mean is detached), is measured in bits per dimension and
is scaled by ``num_train_timesteps / 1000`` as in DiT.

``snr_gamma`` optionally weights the MSE of every sample by ``min(SNR_t, gamma) / SNR_t`` (Min-SNR-gamma, Hang et
al., 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy", for epsilon prediction; diffusers' example
scripts' ``--snr_gamma``), which down-weights the nearly clean steps and speeds up convergence.
"""

from __future__ import annotations

import math

import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr


def _gather(values: torch.Tensor, timesteps: torch.Tensor, ndim: int) -> torch.Tensor:
    """``values[timesteps]`` reshaped to ``(B, 1, ..., 1)`` for broadcasting against ``ndim``-D latents."""
    return values.to(timesteps.device)[timesteps].float().reshape(-1, *([1] * (ndim - 1)))


def _normal_kl(mean_1, log_var_1, mean_2, log_var_2) -> torch.Tensor:
    """KL(N(mean_1, exp(log_var_1)) || N(mean_2, exp(log_var_2))), elementwise."""
    return 0.5 * (
        -1.0
        + log_var_2
        - log_var_1
        + torch.exp(log_var_1 - log_var_2)
        + (mean_1 - mean_2) ** 2 * torch.exp(-log_var_2)
    )


def _approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def _discretized_gaussian_log_likelihood(x, mean, log_scale) -> torch.Tensor:
    """Log-likelihood of ``x`` in [-1, 1] under a Gaussian discretised into 256 bins (the t = 0 decoder term)."""
    centered = x - mean
    inv_stdv = torch.exp(-log_scale)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


def learned_range_log_variance(
    scheduler: DDPMScheduler, variance_output: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """Model log-variance from the raw variance channels ``v`` (any shape ``(B, c, ...)``), per element."""
    ndim = variance_output.ndim
    betas = _gather(scheduler.betas, timesteps, ndim)
    min_log = _gather(_posterior_log_variance_clipped(scheduler), timesteps, ndim)
    frac = (variance_output.float() + 1) / 2
    return frac * torch.log(betas) + (1 - frac) * min_log


def _posterior_log_variance_clipped(scheduler: DDPMScheduler) -> torch.Tensor:
    """log of the q(x_{t-1} | x_t, x_0) variance, with t = 0 (variance 0) replaced by t = 1 as in DiT."""
    alphas_cumprod = scheduler.alphas_cumprod.double()
    alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    posterior_variance = scheduler.betas.double() * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)
    return torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]])).float()


def diffusion_loss(
    scheduler: DDPMScheduler,
    model_output: torch.Tensor,
    latents: torch.Tensor,
    noise: torch.Tensor,
    noisy_latents: torch.Tensor,
    timesteps: torch.Tensor,
    snr_gamma: float | None = None,
) -> dict[str, torch.Tensor]:
    """DiT loss for one batch.

    Args:
        scheduler: the training ``DDPMScheduler`` (its betas define the process).
        model_output: ``(B, c, ...)`` (fixed variance: MSE only) or ``(B, 2c, ...)`` (``[epsilon | v]``).
        latents: clean latents ``x_0``, ``(B, c, ...)``.
        noise: the added noise ``epsilon``, same shape.
        noisy_latents: ``x_t = scheduler.add_noise(latents, noise, timesteps)``.
        timesteps: ``(B,)`` int64 steps.
        snr_gamma: Min-SNR-gamma weight cap of the MSE (``None``: unweighted, as DiT).

    Returns:
        ``{"loss", "mse", "vlb"}`` scalars (``vlb`` is 0 without a learned variance).
    """
    channels = latents.shape[1]
    if model_output.shape[1] not in (channels, 2 * channels):
        raise ValueError(
            f"model_output: expected {channels} or {2 * channels} channels for {channels}-channel latents, "
            f"got {model_output.shape[1]}."
        )
    if snr_gamma is not None and not snr_gamma > 0:
        raise ValueError(f"snr_gamma: expected a positive number or None, got {snr_gamma}.")
    noise_pred = model_output[:, :channels].float()
    reduce_dims = tuple(range(1, latents.ndim))
    squared_error = (noise_pred - noise.float()).pow(2).mean(reduce_dims)  # (B,)
    if snr_gamma is not None:
        snr = compute_snr(scheduler, timesteps)
        squared_error = squared_error * snr.clamp(max=snr_gamma) / snr
    mse = squared_error.mean()
    if model_output.shape[1] == channels:
        return {"loss": mse, "mse": mse, "vlb": torch.zeros_like(mse)}

    ndim = latents.ndim
    x_0, x_t = latents.float(), noisy_latents.float()
    alphas_cumprod = scheduler.alphas_cumprod
    alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    abar_t = _gather(alphas_cumprod, timesteps, ndim)
    abar_prev = _gather(alphas_cumprod_prev, timesteps, ndim)
    beta_t = _gather(scheduler.betas, timesteps, ndim)
    mean_coef_x0 = beta_t * abar_prev.sqrt() / (1 - abar_t)
    mean_coef_xt = (1 - abar_prev) * (1 - beta_t).sqrt() / (1 - abar_t)

    true_mean = mean_coef_x0 * x_0 + mean_coef_xt * x_t
    true_log_variance = _gather(_posterior_log_variance_clipped(scheduler), timesteps, ndim)
    x_0_pred = (x_t - (1 - abar_t).sqrt() * noise_pred.detach()) / abar_t.sqrt()  # mean frozen: VLB trains sigma
    model_mean = mean_coef_x0 * x_0_pred + mean_coef_xt * x_t
    model_log_variance = learned_range_log_variance(scheduler, model_output[:, channels:], timesteps)

    kl = _normal_kl(true_mean, true_log_variance, model_mean, model_log_variance)
    decoder_nll = -_discretized_gaussian_log_likelihood(x_0, model_mean, 0.5 * model_log_variance)
    vlb_bits = torch.where(timesteps == 0, decoder_nll.mean(reduce_dims), kl.mean(reduce_dims)) / math.log(2.0)
    vlb = vlb_bits.mean() * scheduler.config.num_train_timesteps / 1000.0
    return {"loss": mse + vlb, "mse": mse, "vlb": vlb}
