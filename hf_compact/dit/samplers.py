"""Samplers for the DiT pipelines, by objective: DiT's DDPM (epsilon + learned variance) and flow matching.

* ``"ddpm"`` objective (DiT): ``x_t = sqrt(abar_t) * x_0 + sqrt(1 - abar_t) * noise``, the transformer predicts
  ``[epsilon | v]`` (``2c`` channels with a learned variance). DiT samples with ancestral DDPM over 250 steps using
  the learned-range variance; a deterministic solver (DDIM, DPM-Solver++, UniPC) only needs ``epsilon``. diffusers'
  ``DPMSolverMultistepScheduler`` can drop the variance itself (``variance_type="learned_range"``) but slices a
  hard-coded 3 channels, which is wrong for latents of any other width; so the solvers here are built with
  ``variance_type=None`` and the pipelines hand them ``c`` channels.
* ``"flow_matching"`` objective (SD3, SiT): ``x_t = (1 - sigma) * x_0 + sigma * noise``, the transformer predicts the
  velocity ``noise - x_0`` at timestep ``sigma * num_train_timesteps``; diffusers' flow-matching Euler / Heun, or
  DPM-Solver++ / UniPC with ``use_flow_sigmas=True, prediction_type="flow_prediction"``, all with the same
  ``shift``.

:func:`build_sampler` makes any of them by name from the training (or saved) scheduler's config.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

LEARNED_VARIANCE_TYPES = ("learned", "learned_range")
OBJECTIVES = ("ddpm", "flow_matching")
SAMPLERS = {
    "ddpm": ("ddpm", "ddim", "dpmsolver++", "unipc"),
    "flow_matching": ("euler", "heun", "dpmsolver++", "unipc"),
}


def scheduler_uses_learned_variance(scheduler) -> bool:
    """Whether ``scheduler.step`` expects ``[epsilon | v]`` (``2c`` channels): DDPM with a learned variance."""
    return isinstance(scheduler, DDPMScheduler) and scheduler.config.variance_type in LEARNED_VARIANCE_TYPES


def config_objective(config: Mapping) -> str | None:
    """The objective a scheduler config is for: ``"flow_matching"`` (a ``shift``, flow sigmas or flow prediction),
    ``"ddpm"`` (a beta schedule) or ``None`` (neither, e.g. ``{}``)."""
    if "shift" in config or config.get("use_flow_sigmas") or config.get("prediction_type") == "flow_prediction":
        return "flow_matching"
    return "ddpm" if "beta_schedule" in config or "trained_betas" in config else None


def scheduler_objective(scheduler: SchedulerMixin) -> str:
    """``"flow_matching"`` for a flow-matching scheduler (flow Euler/Heun, or flow sigmas), else ``"ddpm"``."""
    return config_objective(scheduler.config) or "ddpm"


def check_scheduler(scheduler, transformer) -> None:
    """Reject schedulers that would mis-read the transformer's output.

    A solver with a learned ``variance_type`` slices the variance itself (see the module docstring); a
    learned-variance DDPM needs the ``2c`` output channels of a learned-sigma transformer.
    """
    if scheduler_uses_learned_variance(scheduler):
        in_channels, out_channels = transformer.config.in_channels, transformer.out_channels
        if out_channels != 2 * in_channels:
            raise ValueError(
                f"scheduler: DDPMScheduler with variance_type={scheduler.config.variance_type!r} needs a transformer "
                f"that predicts a variance (out_channels={2 * in_channels}), got out_channels={out_channels}; use "
                "variance_type='fixed_small' or a deterministic solver."
            )
        return
    if isinstance(scheduler, DDPMScheduler) or "variance_type" not in inspect.signature(type(scheduler)).parameters:
        return  # DDIM and others have no such option (a copied config key is unused)
    variance_type = scheduler.config.variance_type
    if variance_type in LEARNED_VARIANCE_TYPES:
        raise ValueError(
            f"scheduler: expected {type(scheduler).__name__} with variance_type=None (the pipeline passes it the "
            f"epsilon half of a learned-sigma output), got variance_type={variance_type!r}."
        )


def build_sampler(name: str, objective: str, config: Mapping | None = None) -> SchedulerMixin:
    """A diffusers scheduler for ``objective`` by name, on the noise schedule of ``config``.

    Args:
        name: for ``"ddpm"``: ``"ddpm"`` (ancestral, with the variance type of ``config``: DiT's reference),
            ``"ddim"``, ``"dpmsolver++"`` (2nd order multistep; Lu et al., 2022) or ``"unipc"`` (Zhao et al., 2023);
            for ``"flow_matching"``: ``"euler"``, ``"heun"`` (2 network evaluations per step but the last),
            ``"dpmsolver++"`` or ``"unipc"``.
        objective: ``"ddpm"`` or ``"flow_matching"`` (see :func:`scheduler_objective`).
        config: the training or saved scheduler's config: ``num_train_timesteps`` and, for ``"ddpm"``, the betas;
            for ``"flow_matching"``, ``shift`` (flow Euler/Heun) or ``flow_shift`` (multistep solvers). Defaults:
            diffusers' (1000 steps, linear betas, shift 1).

    Returns:
        A fresh scheduler; the deterministic ``"ddpm"`` solvers have ``variance_type=None``.
    """
    if objective not in SAMPLERS:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}.")
    if name not in SAMPLERS[objective]:
        raise ValueError(f"name: expected one of {SAMPLERS[objective]} for objective {objective!r}, got {name!r}.")
    config = dict(config or {})
    if config_objective(config) not in (None, objective):
        raise ValueError(
            f"config: expected the config of a {objective!r} scheduler, got one of a {config_objective(config)!r} "
            f"scheduler ({sorted(key for key in config if not key.startswith('_'))})."
        )
    num_train_timesteps = config.get("num_train_timesteps", 1000)
    solver_options = {"solver_order": 2, "lower_order_final": True, "final_sigmas_type": "zero"}
    if objective == "flow_matching":
        shift = config.get("shift", config.get("flow_shift", 1.0))
        if name == "euler":
            return FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=shift)
        if name == "heun":
            return FlowMatchHeunDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=shift)
        solver = DPMSolverMultistepScheduler if name == "dpmsolver++" else UniPCMultistepScheduler
        flow_options = {"use_flow_sigmas": True, "flow_shift": shift, "prediction_type": "flow_prediction"}
        if name == "dpmsolver++":
            flow_options["algorithm_type"] = "dpmsolver++"
        return solver(num_train_timesteps=num_train_timesteps, **flow_options, **solver_options)
    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    epsilon_options = {"prediction_type": "epsilon", "timestep_spacing": "linspace", **solver_options}
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", variance_type=None, **epsilon_options
        )
    return UniPCMultistepScheduler.from_config(config, **epsilon_options)


def fast_scheduler(config: Mapping) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ (2nd order, multistep) on the DDPM noise schedule of ``config``, for 20-50 steps: the
    ``"dpmsolver++"`` sampler of the ``"ddpm"`` objective."""
    return build_sampler("dpmsolver++", "ddpm", config)
