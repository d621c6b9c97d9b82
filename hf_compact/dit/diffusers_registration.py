"""How diffusers finds this package's DiT classes in plain ``save_pretrained`` folders. Imported once, by
``hf_compact.dit``; the rest of the package needs none of it.

diffusers' loaders know classes by name, not by import path:

* ``DiffusionPipeline.from_pretrained(folder)`` reads ``"_class_name": "DiTImagePipeline"`` from ``model_index.json``
  and looks that name up on the ``diffusers`` module, so the two pipeline classes are added there.
* ``save_pretrained`` records each component as ``[library, class]``, taking the library from the class's
  ``__module__``. A module path whose second-to-last part names one of diffusers' pipeline folders is mistaken for
  that folder: ``hf_compact.dit.transformer_dit_3d`` would be recorded as diffusers' own ``dit`` pipelines and not
  load back. The 3-D transformer is therefore recorded as ``["hf_compact.dit", "DiTTransformer3DModel"]``, as every
  folder saved so far says; the loader also looks ``ModelMixin`` up in that module to choose the loading method,
  which is why ``hf_compact/dit/__init__.py`` imports it.

Folders written by :func:`hf_compact.hub.save_pretrained_with_code` carry their own code instead and load without
hf-compact (``trust_remote_code=True``); with it, ``DiTImagePipeline.from_pretrained`` /
``DiTVideoPipeline.from_pretrained`` load them with the installed classes, which are listed here for them.
"""

from __future__ import annotations

import diffusers

from ..vitok import AutoencoderViTok
from .pipeline_dit import DiTImagePipeline
from .pipeline_dit_video import DiTVideoPipeline
from .transformer_dit_3d import DiTTransformer3DModel

COMPONENT_MODULE = "hf_compact.dit"


def register_with_diffusers() -> None:
    """Makes the DiT pipelines loadable by ``DiffusionPipeline.from_pretrained``, folders saved with code loadable by
    the pipelines' own ``from_pretrained``, and the 3-D transformer savable as a pipeline component. Idempotent.

    Raises:
        RuntimeError: diffusers defines a class of the same name as one of the pipelines (it would be shadowed).
    """
    DiTTransformer3DModel.__module__ = COMPONENT_MODULE
    for pipeline_class in (DiTImagePipeline, DiTVideoPipeline):
        existing = getattr(diffusers, pipeline_class.__name__, None)
        if existing is not None and existing is not pipeline_class:
            raise RuntimeError(f"diffusers already defines {pipeline_class.__name__}; hf_compact would shadow it.")
        setattr(diffusers, pipeline_class.__name__, pipeline_class)
        pipeline_class._component_classes = {cls.__name__: cls for cls in (AutoencoderViTok, DiTTransformer3DModel)}


register_with_diffusers()
