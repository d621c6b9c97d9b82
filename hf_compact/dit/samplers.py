"""Samplers for the DiT pipelines: DiT's learned-variance DDPM (the reference) and a fast deterministic solver.

DiT samples with ancestral DDPM over 250 steps, using the model's learned-range variance. A deterministic ODE
solver only needs the noise prediction, so with a learned-sigma model (``2c`` output channels, ``[epsilon | v]``)
it must receive the ``epsilon`` half only. diffusers' ``DPMSolverMultistepScheduler`` can drop the variance itself
(``variance_type="learned_range"``) but slices a hard-coded 3 channels, which is wrong for latents of any other
width; so the fast scheduler here is built with ``variance_type=None`` and the pipelines hand it ``c`` channels.
"""

from __future__ import annotations

import inspect

from diffusers import DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.configuration_utils import FrozenDict

LEARNED_VARIANCE_TYPES = ("learned", "learned_range")


def scheduler_uses_learned_variance(scheduler) -> bool:
    """Whether ``scheduler.step`` expects ``[epsilon | v]`` (``2c`` channels): DDPM with a learned variance."""
    return isinstance(scheduler, DDPMScheduler) and scheduler.config.variance_type in LEARNED_VARIANCE_TYPES


def check_scheduler(scheduler) -> None:
    """Reject schedulers that would mis-read a learned-sigma output (see the module docstring)."""
    if isinstance(scheduler, DDPMScheduler) or "variance_type" not in inspect.signature(type(scheduler)).parameters:
        return  # DDPM samples with the variance; DDIM and others have no such option (a copied config key is unused)
    variance_type = scheduler.config.variance_type
    if variance_type in LEARNED_VARIANCE_TYPES:
        raise ValueError(
            f"scheduler: expected {type(scheduler).__name__} with variance_type=None (the pipeline passes it the "
            f"epsilon half of a learned-sigma output), got variance_type={variance_type!r}."
        )


def fast_scheduler(config: FrozenDict | dict) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ (2nd order, multistep; Lu et al., 2022) on the same noise schedule as ``config``.

    Args:
        config: the training / DDPM scheduler's config (``num_train_timesteps``, ``beta_schedule``, betas).

    Returns:
        A deterministic epsilon-prediction solver for 20-50 steps, with ``variance_type=None``.
    """
    return DPMSolverMultistepScheduler.from_config(
        config,
        algorithm_type="dpmsolver++",
        solver_order=2,
        prediction_type="epsilon",
        variance_type=None,
        timestep_spacing="linspace",
        final_sigmas_type="zero",
        lower_order_final=True,
    )
