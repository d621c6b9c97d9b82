"""``DiTImagePipeline``: diffusers' ``DiTPipeline`` with guidance for any class count, flow matching, guidance
interval and rescale, and a saved ``id2label``."""

from __future__ import annotations

import torch
from diffusers import DiTPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from .class_conditioning import ClassConditionalPipelineMixin, normalize_id2label


class DiTImagePipeline(ClassConditionalPipelineMixin, DiTPipeline):
    r"""Class-conditional image generation with a ``DiTTransformer2DModel`` on an autoencoder's latents.

    A subclass of ``diffusers.DiTPipeline`` (same components, same call) that:

    * reads the classifier-free-guidance null class from ``transformer.config.num_embeds_ada_norm`` instead of the
      hard-coded ``1000``, so guidance works for any number of classes (and is unchanged for 1000-class ImageNet
      models);
    * samples with the schedulers of either objective, DiT's DDPM (epsilon, learned variance) or flow matching
      (velocity), see :mod:`hf_compact.dit.samplers`;
    * limits guidance to an interval of the trajectory and rescales it (``guidance_interval``,
      ``guidance_rescale``);
    * stores ``id2label`` in ``model_index.json``, so that it comes back with ``from_pretrained``.

    It also checks its inputs: class ids must be integers in ``[0, num_classes)`` and the autoencoder's
    ``latent_channels`` must equal the transformer's ``in_channels``. With ``AutoencoderViTok`` (patch size
    ``p``, ``c`` latent channels) use ``DiTTransformer2DModel(in_channels=c, out_channels=2 * c,
    sample_size=H // p, patch_size=1, num_embeds_ada_norm=num_classes)`` (``out_channels=c`` for flow matching).

    Args:
        transformer: class-conditional ``DiTTransformer2DModel``.
        vae: autoencoder with ``config.scaling_factor`` and ``decode(latents).sample`` in [-1, 1].
        scheduler: a scheduler of the transformer's objective (e.g. ``DDIMScheduler`` or
            ``FlowMatchEulerDiscreteScheduler``; :func:`hf_compact.dit.samplers.build_sampler` makes them by name).
        id2label: optional ``{class_id: name}`` (comma-separated synonyms allowed, as in ``DiTPipeline``).
    """

    def __init__(self, transformer, vae, scheduler, id2label: dict | None = None):
        id2label = normalize_id2label(id2label)
        super().__init__(transformer=transformer, vae=vae, scheduler=scheduler, id2label=id2label)
        self.register_to_config(id2label=id2label)
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
        output_type: str = "pil",
        return_dict: bool = True,
        guidance_interval: tuple[float, float] = (0.0, 1.0),
        guidance_rescale: float = 0.0,
    ) -> ImagePipelineOutput | tuple:
        r"""Generate one image per class id.

        Args:
            class_labels: ``B`` integer class ids in ``[0, num_classes)``.
            guidance_scale: classifier-free guidance weight; ``<= 1`` disables guidance. A result that is not
                finite (e.g. from a huge weight) gives a ``RuntimeWarning``.
            generator: torch generator(s) for reproducible sampling.
            num_inference_steps: number of denoising steps.
            output_type: ``"pil"`` (list of ``PIL.Image``), ``"np"`` (``(B, H, W, 3)`` float in [0, 1]) or
                ``"pt"`` (``(B, 3, H, W)`` float in [0, 1]).
            return_dict: return an ``ImagePipelineOutput`` instead of a tuple.
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
        latents = randn_tensor(
            (labels.shape[0], config.in_channels, config.sample_size, config.sample_size),
            generator=generator,
            device=self._execution_device,
            dtype=self.transformer.dtype,
        )
        latents = self.denoise(
            latents, labels, guidance_scale, num_inference_steps, generator, guidance_interval, guidance_rescale
        )
        images = (self.decode_latents(latents) / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
