"""``DiTImagePipeline``: diffusers' ``DiTPipeline`` with guidance for any class count and a saved ``id2label``."""

from __future__ import annotations

import torch
from diffusers import DiTPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from .class_conditioning import ClassConditionalPipelineMixin, normalize_id2label


class DiTImagePipeline(ClassConditionalPipelineMixin, DiTPipeline):
    r"""Class-conditional image generation with a ``DiTTransformer2DModel`` on an autoencoder's latents.

    A thin subclass of ``diffusers.DiTPipeline`` (same components, same call) that fixes two things:

    * the classifier-free-guidance null class is ``transformer.config.num_embeds_ada_norm`` instead of the
      hard-coded ``1000``, so guidance works for any number of classes (and is unchanged for 1000-class
      ImageNet models);
    * ``id2label`` is stored in ``model_index.json`` and comes back with ``from_pretrained``.

    It also checks its inputs: class ids must be integers in ``[0, num_classes)`` and the autoencoder's
    ``latent_channels`` must equal the transformer's ``in_channels``. With ``AutoencoderViTok`` (patch size
    ``p``, ``c`` latent channels) use ``DiTTransformer2DModel(in_channels=c, out_channels=2 * c,
    sample_size=H // p, patch_size=1, num_embeds_ada_norm=num_classes)``.

    Args:
        transformer: class-conditional ``DiTTransformer2DModel``.
        vae: autoencoder with ``config.scaling_factor`` and ``decode(latents).sample`` in [-1, 1].
        scheduler: any diffusers scheduler (DDIM as in DiT/ViTok by default).
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
    ) -> ImagePipelineOutput | tuple:
        r"""Generate one image per class id.

        Args:
            class_labels: ``B`` integer class ids in ``[0, num_classes)``.
            guidance_scale: classifier-free guidance weight; ``<= 1`` disables guidance.
            generator: torch generator(s) for reproducible sampling.
            num_inference_steps: number of denoising steps.
            output_type: ``"pil"`` (list of ``PIL.Image``), ``"np"`` (``(B, H, W, 3)`` float in [0, 1]) or
                ``"pt"`` (``(B, 3, H, W)`` float in [0, 1]).
            return_dict: return an ``ImagePipelineOutput`` instead of a tuple.
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
        latents = self.denoise(latents, labels, guidance_scale, num_inference_steps, generator)
        images = (self.decode_latents(latents) / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
