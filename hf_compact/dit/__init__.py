"""Class-conditional DiT generation on ViTok latents: image and video pipelines and a 3-D DiT transformer.

``DiffusionPipeline.from_pretrained`` looks a saved pipeline's ``_class_name`` up on the ``diffusers`` module, so
importing this package registers the two pipeline classes there; a folder saved by either pipeline then loads with
``DiffusionPipeline.from_pretrained(path)`` after ``import hf_compact``.
"""

import diffusers
from diffusers import ModelMixin  # noqa: F401  (see the note on __module__ below)

from .pipeline_dit import DiTImagePipeline
from .pipeline_dit_video import DiTVideoPipeline, DiTVideoPipelineOutput
from .transformer_dit_3d import DiTTransformer3DModel

# diffusers records a component as (module, class) in model_index.json; for a class defined in
# ``hf_compact.dit.<file>`` it mistakes the folder name ``dit`` for its own ``diffusers.pipelines.dit`` and cannot
# load it back. So the transformer is recorded under this package (which keeps saved pipelines loadable if the file
# moves); the loader also looks up ``ModelMixin`` in that module to pick the loading method, hence the import above.
DiTTransformer3DModel.__module__ = __name__


def _register_pipelines_with_diffusers() -> None:
    for pipeline_class in (DiTImagePipeline, DiTVideoPipeline):
        existing = getattr(diffusers, pipeline_class.__name__, None)
        if existing is not None and existing is not pipeline_class:
            raise RuntimeError(f"diffusers already defines {pipeline_class.__name__}; hf_compact would shadow it.")
        setattr(diffusers, pipeline_class.__name__, pipeline_class)


_register_pipelines_with_diffusers()

__all__ = ["DiTImagePipeline", "DiTTransformer3DModel", "DiTVideoPipeline", "DiTVideoPipelineOutput"]
