"""The one place where a class name found in a saved folder or a config is turned into a class of this package.

Saved folders name their class: diffusers models in ``config.json``'s ``_class_name``, transformers models in
``config.json``'s ``architectures``. The hub helpers (:func:`hf_compact.hub.push.load_for_push`) and the training
scripts resolve those names here instead of looking attributes up on the package, so the set of loadable classes
is explicit and an unknown name fails with the list of known ones.
"""

from __future__ import annotations

from types import ModuleType

from .cct import CCTForImageClassification, CCTModel
from .cct.modeling_text_cct import TextCCTForSequenceClassification, TextCCTModel
from .dit import DiTImagePipeline, DiTTransformer3DModel, DiTVideoPipeline
from .vitok import AutoencoderViTok

CLASS_REGISTRY: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        AutoencoderViTok,
        CCTForImageClassification,
        CCTModel,
        DiTImagePipeline,
        DiTTransformer3DModel,
        DiTVideoPipeline,
        TextCCTForSequenceClassification,
        TextCCTModel,
    )
}


def resolve_class(name: str | None, argument: str, library: ModuleType | None = None) -> type:
    """The class registered as ``name``, else (when ``library`` is given) the class ``library.<name>``.

    Args:
        name: a class name such as ``"AutoencoderViTok"``, as saved in a folder's ``config.json``.
        argument: what ``name`` came from, used in the error message (e.g. ``"--vae_name_or_path"``).
        library: a module to fall back on for classes that are not this package's, e.g. ``diffusers``.

    Raises:
        ValueError: ``name`` is neither registered nor a class of ``library``; the message lists the known names.
    """
    if name in CLASS_REGISTRY:
        return CLASS_REGISTRY[name]
    if library is not None and isinstance(name, str) and isinstance(getattr(library, name, None), type):
        return getattr(library, name)
    also = f" or a class of {library.__name__}" if library is not None else ""
    raise ValueError(f"{argument}: expected one of {sorted(CLASS_REGISTRY)}{also}, got {name!r}.")
