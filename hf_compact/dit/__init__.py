"""Class-conditional DiT generation on ViTok latents: image and video pipelines and a 3-D DiT transformer.

Importing this package registers the pipelines with diffusers (:mod:`hf_compact.dit.diffusers_registration`): a
folder saved by either pipeline's ``save_pretrained`` loads with ``DiffusionPipeline.from_pretrained(path)`` after
``import hf_compact``, and one saved with its code (the training scripts, ``push_to_hub``) with
``DiTImagePipeline.from_pretrained(path)`` / ``DiTVideoPipeline.from_pretrained(path)``.
"""

from diffusers import ModelMixin  # noqa: F401  (looked up here by diffusers' loader; see diffusers_registration)

from . import diffusers_registration  # noqa: F401
from .pipeline_dit import DiTImagePipeline
from .pipeline_dit_video import DiTVideoPipeline, DiTVideoPipelineOutput
from .presets import DIT_PRESETS, dit_paper_name, dit_preset
from .transformer_dit_3d import DiTTransformer3DModel

__all__ = [
    "DIT_PRESETS",
    "DiTImagePipeline",
    "DiTTransformer3DModel",
    "DiTVideoPipeline",
    "DiTVideoPipelineOutput",
    "dit_paper_name",
    "dit_preset",
]
