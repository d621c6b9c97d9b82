"""What the image and video DiT pipelines share: class-label checks, the null class and the guided denoising loop.

diffusers' ``DiTPipeline`` hard-codes the classifier-free-guidance null class as ``1000`` (ImageNet). Both the
2-D ``DiTTransformer2DModel`` and :class:`~hf_compact.DiTTransformer3DModel` embed classes with diffusers'
``LabelEmbedding``, whose table has ``num_embeds_ada_norm + 1`` rows and whose last row (index
``num_embeds_ada_norm``) is the "no class" embedding learnt through label dropout. Reading the null class from
``transformer.config.num_embeds_ada_norm`` therefore gives exactly the stock behaviour for 1000-class models and
working guidance for any other class count.
"""

from __future__ import annotations

import inspect
import math
import numbers

import numpy as np
import torch

from .samplers import check_scheduler, scheduler_uses_learned_variance

OUTPUT_TYPES = ("pil", "np", "pt")


def check_sampling_arguments(guidance_scale: float, num_inference_steps: int) -> None:
    """Raise for a non-finite ``guidance_scale`` or a ``num_inference_steps`` that is not a positive int."""
    if (
        isinstance(guidance_scale, bool)
        or not isinstance(guidance_scale, numbers.Real)
        or not math.isfinite(guidance_scale)
    ):
        raise ValueError(f"guidance_scale: expected a finite number, got {guidance_scale!r}.")
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, numbers.Integral):
        raise TypeError(f"num_inference_steps: expected an int, got {num_inference_steps!r}.")
    if num_inference_steps <= 0:
        raise ValueError(f"num_inference_steps: expected a positive number of steps, got {num_inference_steps}.")


class ClassConditionalPipelineMixin:
    """Shared by :class:`DiTImagePipeline` and :class:`DiTVideoPipeline`; expects ``transformer``,
    ``vae`` and ``scheduler`` components and diffusers' ``progress_bar``."""

    @property
    def num_classes(self) -> int:
        """Number of real classes; the null (unconditional) class id equals this number."""
        return int(self.transformer.config.num_embeds_ada_norm)

    @property
    def null_class_id(self) -> int:
        return self.num_classes

    def check_components(self) -> None:
        """Raise if the autoencoder's latent channels differ from the transformer's input channels."""
        transformer_channels = self.transformer.config.in_channels
        vae_channels = getattr(self.vae.config, "latent_channels", None)
        if vae_channels is not None and vae_channels != transformer_channels:
            raise ValueError(
                f"vae: expected an autoencoder with latent_channels={transformer_channels} (the transformer's "
                f"in_channels), got latent_channels={vae_channels}."
            )

    def prepare_class_labels(self, class_labels: int | list[int] | torch.Tensor | np.ndarray) -> torch.Tensor:
        """Validate ``class_labels`` and return them as a ``(B,)`` int64 tensor on the execution device."""
        if isinstance(class_labels, (torch.Tensor, np.ndarray)):
            labels = torch.as_tensor(class_labels)
            if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
                raise TypeError(f"class_labels: expected integer class ids, got a tensor of dtype {labels.dtype}.")
            labels = labels.reshape(-1).long()
        else:
            values = [class_labels] if isinstance(class_labels, numbers.Number) else list(class_labels)
            bad = [value for value in values if isinstance(value, bool) or not isinstance(value, numbers.Integral)]
            if bad:
                raise TypeError(f"class_labels: expected integer class ids, got {bad[0]!r} ({type(bad[0]).__name__}).")
            labels = torch.tensor([int(value) for value in values], dtype=torch.long)
        if labels.numel() == 0:
            raise ValueError("class_labels: expected at least one class id, got none.")
        out_of_range = labels[(labels < 0) | (labels >= self.num_classes)]
        if out_of_range.numel():
            raise ValueError(
                f"class_labels: expected ids in [0, {self.num_classes - 1}] (the transformer has "
                f"num_embeds_ada_norm={self.num_classes} classes), got {out_of_range[0].item()}."
            )
        return labels.to(self._execution_device)

    @staticmethod
    def check_output_type(output_type: str) -> None:
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type: expected one of {OUTPUT_TYPES}, got {output_type!r}.")

    def denoise(
        self,
        latents: torch.Tensor,
        class_labels: torch.Tensor,
        guidance_scale: float,
        num_inference_steps: int,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> torch.Tensor:
        """Run the scheduler from pure noise ``latents`` ``(B, c, ...)`` to clean latents of the same shape.

        With ``guidance_scale > 1`` the batch is doubled with the null class and the noise prediction is
        ``uncond + guidance_scale * (cond - uncond)``. A learned-variance output (``2c`` channels) is handed to
        the scheduler only when it samples with it (``DDPMScheduler`` with ``variance_type``
        ``"learned"``/``"learned_range"``, as in DiT); every other scheduler (DDIM, DPM-Solver) gets the ``c``
        epsilon channels only.
        """
        check_sampling_arguments(guidance_scale, num_inference_steps)
        check_scheduler(self.scheduler)
        latent_channels = latents.shape[1]
        use_guidance = guidance_scale > 1
        if use_guidance:
            null_labels = torch.full_like(class_labels, self.null_class_id)
            class_labels = torch.cat([class_labels, null_labels])
        scheduler_uses_variance = scheduler_uses_learned_variance(self.scheduler)
        step_kwargs = (
            {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        )

        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        for timestep in self.progress_bar(self.scheduler.timesteps):
            model_input = torch.cat([latents, latents]) if use_guidance else latents
            model_input = self.scheduler.scale_model_input(model_input, timestep)
            timesteps = timestep.reshape(1).to(model_input.device).expand(model_input.shape[0])
            prediction = self.transformer(model_input, timestep=timesteps, class_labels=class_labels).sample
            noise_pred, variance_pred = prediction[:, :latent_channels], prediction[:, latent_channels:]
            if use_guidance:
                cond_noise, uncond_noise = noise_pred.chunk(2)
                noise_pred = uncond_noise + guidance_scale * (cond_noise - uncond_noise)
                variance_pred = variance_pred.chunk(2)[0]
            if scheduler_uses_variance and variance_pred.shape[1] == latent_channels:
                noise_pred = torch.cat([noise_pred, variance_pred], dim=1)
            latents = self.scheduler.step(noise_pred, timestep, latents, **step_kwargs).prev_sample
        return latents

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Undo the autoencoder's latent scaling/shift and decode to pixels in [-1, 1]."""
        shift_factor = getattr(self.vae.config, "shift_factor", None) or 0.0
        latents = latents / self.vae.config.scaling_factor + shift_factor
        return self.vae.decode(latents.to(self.vae.dtype)).sample


def normalize_id2label(id2label: dict | None) -> dict[int, str] | None:
    """``{0: "cat"}`` from either int keys or the string keys that JSON configs give back."""
    if id2label is None:
        return None
    return {int(key): str(value) for key, value in id2label.items()}
