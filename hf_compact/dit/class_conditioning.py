"""What the image and video DiT pipelines share: class-label checks, the null class, the guided denoising loop and
``from_pretrained`` for folders saved with their modelling code.

diffusers' ``DiTPipeline`` hard-codes the classifier-free-guidance null class as ``1000`` (ImageNet). Both the
2-D ``DiTTransformer2DModel`` and :class:`~hf_compact.DiTTransformer3DModel` embed classes with diffusers'
``LabelEmbedding``, whose table has ``num_embeds_ada_norm + 1`` rows and whose last row (index
``num_embeds_ada_norm``) is the "no class" embedding learnt through label dropout. Reading the null class from
``transformer.config.num_embeds_ada_norm`` therefore gives exactly the stock behaviour for 1000-class models and
working guidance for any other class count.

The denoising loop is the same for every objective and scheduler (see :mod:`hf_compact.dit.samplers`): the
transformer's first ``c`` output channels (epsilon or velocity) are guided and handed to ``scheduler.step``, with
the learned variance appended only for a scheduler that samples with it.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import diffusers
import numpy as np
import torch
from diffusers.guiders.guider_utils import rescale_noise_cfg
from huggingface_hub import snapshot_download

from .samplers import check_scheduler, scheduler_uses_learned_variance

OUTPUT_TYPES = ("pil", "np", "pt")
# from_pretrained's arguments for a folder saved with its code: where to download it from, and how to load models.
_DOWNLOAD_ARGUMENTS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "proxies")
_MODEL_ARGUMENTS = ("torch_dtype", "variant", "use_safetensors", "low_cpu_mem_usage")


def _is_real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def check_sampling_arguments(
    guidance_scale: float,
    num_inference_steps: int,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    guidance_rescale: float = 0.0,
) -> None:
    """Raise for a non-finite ``guidance_scale``, a ``num_inference_steps`` that is not a positive int, a
    ``guidance_interval`` that is not ``(start, end)`` with ``0 <= start <= end <= 1`` or a ``guidance_rescale``
    outside ``[0, 1]``."""
    if not _is_real(guidance_scale):
        raise ValueError(f"guidance_scale: expected a finite number, got {guidance_scale!r}.")
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, numbers.Integral):
        raise TypeError(f"num_inference_steps: expected an int, got {num_inference_steps!r}.")
    if num_inference_steps <= 0:
        raise ValueError(f"num_inference_steps: expected a positive number of steps, got {num_inference_steps}.")
    if (
        not isinstance(guidance_interval, (tuple, list))
        or len(guidance_interval) != 2
        or not all(_is_real(bound) for bound in guidance_interval)
        or not 0 <= guidance_interval[0] <= guidance_interval[1] <= 1
    ):
        raise ValueError(
            f"guidance_interval: expected (start, end) with 0 <= start <= end <= 1, got {guidance_interval!r}."
        )
    if not _is_real(guidance_rescale) or not 0 <= guidance_rescale <= 1:
        raise ValueError(f"guidance_rescale: expected a number in [0, 1], got {guidance_rescale!r}.")


def in_guidance_interval(progress: float, guidance_interval: tuple[float, float]) -> bool:
    """Whether trajectory position ``progress`` (0: pure noise, 1: clean) lies in ``[start, end)``; an interval
    that ends at 1 includes 1, and ``start == end`` is empty."""
    start, end = guidance_interval
    return start <= progress < end or progress == end == 1 and start < end


class ClassConditionalPipelineMixin:
    """Shared by :class:`DiTImagePipeline` and :class:`DiTVideoPipeline`; expects ``transformer``,
    ``vae`` and ``scheduler`` components and diffusers' ``progress_bar``."""

    # Installed classes of the components a folder may carry as code (filled by ``hf_compact.dit``'s registration).
    _component_classes: ClassVar[dict[str, type]] = {}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """``DiffusionPipeline.from_pretrained``, which also loads folders saved with their modelling code.

        Such a folder or Hub repository (written by :func:`hf_compact.hub.save_pretrained_with_code`,
        ``push_to_hub`` and ``training/train_dit.py``) names its code files in ``model_index.json``
        (``"_class_name": ["pipeline_dit", "DiTImagePipeline"]``), which diffusers loads only with
        ``trust_remote_code=True``, by running them. With hf-compact installed it is loaded here with this class and
        the installed component classes, and the folder's code is not run. Components may be passed to replace
        saved ones, as with diffusers; ``trust_remote_code=True`` runs the folder's code instead.
        """
        if kwargs.get("trust_remote_code") or not cls._component_classes:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            download_kwargs = {name: kwargs[name] for name in _DOWNLOAD_ARGUMENTS if name in kwargs}
            folder = Path(snapshot_download(str(pretrained_model_name_or_path), **download_kwargs))
        index = json.loads((folder / "model_index.json").read_text())
        if not isinstance(index.get("_class_name"), list):
            return super().from_pretrained(folder, **kwargs)
        if index["_class_name"][1] != cls.__name__:
            raise ValueError(
                f"pretrained_model_name_or_path: expected a saved {cls.__name__}, got a {index['_class_name'][1]} "
                f"({folder / 'model_index.json'})."
            )
        components, optional = cls._get_signature_keys(cls)
        unknown = set(kwargs) - set(components) - set(optional) - {*_DOWNLOAD_ARGUMENTS, *_MODEL_ARGUMENTS}
        if unknown:
            raise TypeError(
                f"from_pretrained: {sorted(unknown)} cannot be used with a folder saved with its code; pass "
                "trust_remote_code=True to load it with diffusers' loader instead."
            )
        model_kwargs = {name: kwargs[name] for name in _MODEL_ARGUMENTS if name in kwargs}
        init_kwargs = {name: kwargs.get(name, index[name]) for name in optional if name in kwargs or name in index}
        for name in components:
            if name in kwargs:
                init_kwargs[name] = kwargs[name]
                continue
            _, class_name = index[name]
            component_class = cls._component_classes.get(class_name) or getattr(diffusers, class_name, None)
            if component_class is None:
                raise ValueError(
                    f"pretrained_model_name_or_path: {name} is a {class_name}, which neither hf-compact nor diffusers "
                    f"defines ({folder / 'model_index.json'})."
                )
            load_kwargs = model_kwargs if issubclass(component_class, diffusers.ModelMixin) else {}
            init_kwargs[name] = component_class.from_pretrained(folder, subfolder=name, **load_kwargs)
        return cls(**init_kwargs)

    @property
    def num_classes(self) -> int:
        """Number of real classes; the null (unconditional) class id equals this number."""
        return int(self.transformer.config.num_embeds_ada_norm)

    @property
    def null_class_id(self) -> int:
        return self.num_classes

    def check_components(self) -> None:
        """Raise if the autoencoder's latent channels differ from the transformer's input channels, or if
        ``id2label`` names a class the transformer cannot generate (the null class included)."""
        outside = sorted(class_id for class_id in self.id2label or {} if not 0 <= class_id < self.num_classes)
        if outside:
            raise ValueError(
                f"id2label: expected class ids in [0, {self.num_classes - 1}] (the transformer has "
                f"num_embeds_ada_norm={self.num_classes} classes; {self.num_classes} is the null class), got "
                f"{outside[0]}."
            )
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
        guidance_interval: tuple[float, float] = (0.0, 1.0),
        guidance_rescale: float = 0.0,
    ) -> torch.Tensor:
        """Run the scheduler from pure noise ``latents`` ``(B, c, ...)`` to clean latents of the same shape.

        At a network evaluation with guidance (``guidance_scale > 1`` and the evaluation inside
        ``guidance_interval``, see :meth:`DiTImagePipeline.__call__`) the batch is doubled with the null class and
        the prediction (epsilon or velocity: the first ``c`` output channels) is ``uncond + guidance_scale * (cond -
        uncond)``, then rescaled towards the conditional prediction's standard deviation by ``guidance_rescale``
        (diffusers' ``rescale_noise_cfg``). Without guidance only the conditional batch is evaluated. A learned
        variance (output channels ``c:2c``, of the conditional half) is appended only for a scheduler that samples
        with it (``DDPMScheduler`` with ``variance_type`` ``"learned"``/``"learned_range"``, as in DiT).

        Warns (``RuntimeWarning``) when the result is not finite.
        """
        check_sampling_arguments(guidance_scale, num_inference_steps, guidance_interval, guidance_rescale)
        check_scheduler(self.scheduler, self.transformer)
        latent_channels = latents.shape[1]
        guided_labels = torch.cat([class_labels, torch.full_like(class_labels, self.null_class_id)])
        scheduler_uses_variance = scheduler_uses_learned_variance(self.scheduler)
        step_kwargs = (
            {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        )
        num_train_timesteps = self.scheduler.config.num_train_timesteps

        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        timesteps = self.scheduler.timesteps
        guided_steps = [  # positions on the trajectory, read on the host once
            guidance_scale > 1 and in_guidance_interval(1 - float(timestep) / num_train_timesteps, guidance_interval)
            for timestep in timesteps.cpu()
        ]
        for timestep, guided in zip(self.progress_bar(timesteps), guided_steps):
            model_input = torch.cat([latents, latents]) if guided else latents
            if hasattr(self.scheduler, "scale_model_input"):  # flow-matching Euler/Heun have none
                model_input = self.scheduler.scale_model_input(model_input, timestep)
            batch_timesteps = timestep.reshape(1).to(model_input.device).expand(model_input.shape[0])
            labels = guided_labels if guided else class_labels
            prediction = self.transformer(model_input, timestep=batch_timesteps, class_labels=labels).sample
            model_output, variance = prediction[:, :latent_channels], prediction[:, latent_channels:]
            if guided:
                cond_output, uncond_output = model_output.chunk(2)
                model_output = uncond_output + guidance_scale * (cond_output - uncond_output)
                if guidance_rescale > 0:
                    model_output = rescale_noise_cfg(model_output, cond_output, guidance_rescale)
                variance = variance.chunk(2)[0]
            if scheduler_uses_variance:
                model_output = torch.cat([model_output, variance], dim=1)
            latents = self.scheduler.step(model_output, timestep, latents, **step_kwargs).prev_sample

        non_finite = (~torch.isfinite(latents)).sum().item()
        if non_finite:
            warnings.warn(
                f"DiT sampling produced {non_finite} non-finite latent values (of {latents.numel()}): the outputs "
                f"are not valid. With guidance_scale={guidance_scale} the guided prediction may overflow; use a "
                "smaller guidance_scale (DiT uses 1.5-4), or check the transformer's weights.",
                RuntimeWarning,
                stacklevel=4,  # the caller of the pipeline (through torch.no_grad's wrapper and __call__)
            )
        return latents

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Undo the autoencoder's latent scaling/shift and decode to pixels in [-1, 1]."""
        shift_factor = getattr(self.vae.config, "shift_factor", None) or 0.0
        latents = latents / self.vae.config.scaling_factor + shift_factor
        return self.vae.decode(latents.to(self.vae.dtype)).sample


def normalize_id2label(id2label: Mapping | None) -> dict[int, str] | None:
    """``{0: "cat"}`` from either int keys or the string keys that JSON configs give back."""
    if id2label is None:
        return None
    if not isinstance(id2label, Mapping):
        raise TypeError(f"id2label: expected a mapping {{class_id: name}}, got {type(id2label).__name__}.")
    normalized = {}
    for key, name in id2label.items():
        if isinstance(key, bool) or not isinstance(key, (numbers.Integral, str)) or not str(key).lstrip("-").isdigit():
            raise TypeError(f"id2label: expected integer class ids as keys, got {key!r}.")
        if not isinstance(name, str):
            raise TypeError(f"id2label: expected a string name for class {key}, got {name!r} ({type(name).__name__}).")
        normalized[int(key)] = name
    return normalized
