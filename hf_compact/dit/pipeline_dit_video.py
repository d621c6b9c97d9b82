"""``DiTVideoPipeline``: class-conditional video generation with ``DiTTransformer3DModel`` on video latents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from .class_conditioning import ClassConditionalPipelineMixin, normalize_id2label


@dataclass
class DiTVideoPipelineOutput(BaseOutput):
    """
    Args:
        frames: ``(B, T, H, W, 3)`` float array in [0, 1] (``"np"``), ``(B, T, 3, H, W)`` tensor (``"pt"``) or a
            list of ``B`` lists of ``T`` PIL images (``"pil"``).
    """

    frames: np.ndarray | torch.Tensor | list[list[PIL.Image.Image]]


class DiTVideoPipeline(ClassConditionalPipelineMixin, DiffusionPipeline):
    r"""Class-conditional video generation: noise -> ``DiTTransformer3DModel`` denoising -> video autoencoder.

    Same call as diffusers' ``DiTPipeline`` (``class_labels``, ``guidance_scale``, ``num_inference_steps``,
    ``generator``, ``output_type``) and the guidance controls of :class:`DiTImagePipeline` (``guidance_interval``,
    ``guidance_rescale``); the latent grid ``(C, T, H, W)`` comes from the transformer config
    (``in_channels``, ``sample_frames``, ``sample_size``). The null class for classifier-free guidance is
    ``transformer.config.num_embeds_ada_norm``. Write the frames with ``diffusers.utils.export_to_video`` or
    as a GIF with PIL.

    Args:
        transformer: class-conditional ``DiTTransformer3DModel``.
        vae: video autoencoder (e.g. ``AutoencoderViTok``) with ``config.scaling_factor`` and
            ``decode(latents).sample`` of shape ``(B, 3, T, H, W)`` in [-1, 1].
        scheduler: a scheduler of the transformer's objective, DDPM (epsilon) or flow matching (velocity); see
            :func:`hf_compact.dit.samplers.build_sampler`.
        id2label: optional ``{class_id: name}``, saved in ``model_index.json``.
    """

    model_cpu_offload_seq = "transformer->vae"

    def __init__(
        self,
        transformer,
        vae,
        scheduler: SchedulerMixin,
        id2label: dict | None = None,
    ):
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, scheduler=scheduler)
        self.register_to_config(id2label=normalize_id2label(id2label))
        self.video_processor = VideoProcessor(do_resize=False)
        self.check_components()

    @property
    def id2label(self) -> dict[int, str] | None:
        return normalize_id2label(self.config.id2label)

    @torch.no_grad()
    def __call__(
        self,
        class_labels: int | list[int] | torch.Tensor,
        guidance_scale: float = 4.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 50,
        output_type: str = "np",
        return_dict: bool = True,
        guidance_interval: tuple[float, float] = (0.0, 1.0),
        guidance_rescale: float = 0.0,
    ) -> DiTVideoPipelineOutput | tuple:
        r"""Generate one video per class id.

        Args:
            class_labels: ``B`` integer class ids in ``[0, num_classes)``.
            guidance_scale: classifier-free guidance weight; ``<= 1`` disables guidance. A result that is not
                finite (e.g. from a huge weight) gives a ``RuntimeWarning``.
            generator: torch generator(s) for reproducible sampling.
            num_inference_steps: number of denoising steps.
            output_type: ``"np"``, ``"pt"`` or ``"pil"`` (see :class:`DiTVideoPipelineOutput`).
            return_dict: return a :class:`DiTVideoPipelineOutput` instead of a tuple.
            guidance_interval: ``(start, end)``, the part of the sampling trajectory where guidance applies, as
                fractions of the noise level (Kynkaanniemi et al., 2024): the network evaluation at timestep ``t``
                sits at ``p = 1 - t / scheduler.config.num_train_timesteps`` (0: pure noise, 1: clean; for flow
                matching ``p = 1 - sigma``) and is guided when ``start <= p < end`` (an interval ending at 1
                includes ``p = 1``). It therefore means the same for any number of steps, sampler or shift. Outside
                the interval the unconditional pass is skipped; ``start == end`` gives exactly the unguided samples
                (as ``guidance_scale=1``). Default ``(0, 1)``: every evaluation, as DiT.
            guidance_rescale: ``phi`` of Lin et al. (2023) (diffusers' ``guidance_rescale``): the guided prediction
                is rescaled to the conditional prediction's standard deviation with this weight, in ``[0, 1]``;
                ``0`` (default) leaves it as it is.
        """
        self.check_output_type(output_type)
        labels = self.prepare_class_labels(class_labels)
        config = self.transformer.config
        height, width = (config.sample_size,) * 2 if isinstance(config.sample_size, int) else config.sample_size
        latents = randn_tensor(
            (labels.shape[0], config.in_channels, config.sample_frames, height, width),
            generator=generator,
            device=self._execution_device,
            dtype=self.transformer.dtype,
        )
        latents = self.denoise(
            latents, labels, guidance_scale, num_inference_steps, generator, guidance_interval, guidance_rescale
        )
        video = self.decode_latents(latents).clamp(-1, 1)  # (B, 3, T, H, W)
        frames = self.video_processor.postprocess_video(video.float(), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return DiTVideoPipelineOutput(frames=frames)
