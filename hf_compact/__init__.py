"""hf-compact: Compact Transformers (CCT) and ViTok in the Hugging Face stack.

Importing this package registers the CCT family (vision and text) with transformers' ``Auto*`` classes and makes
the diffusers components (``AutoencoderViTok``, ``DiTTransformer3DModel``, the DiT pipelines) loadable with
``DiffusionPipeline.from_pretrained``; folders saved with their modelling code load with the pipelines' own
``from_pretrained`` (see :mod:`hf_compact.dit`).
"""

__version__ = "0.1.0"

from .cct import (
    CCT_PRESETS,
    TEXT_CCT_PRESETS,
    CCTConfig,
    CCTForImageClassification,
    CCTImageProcessor,
    CCTModel,
    TextCCTConfig,
    TextCCTForSequenceClassification,
    TextCCTModel,
)
from .cct.tokenization_text_cct import load_word_vectors, train_word_level_tokenizer
from .dit import DiTImagePipeline, DiTTransformer3DModel, DiTVideoPipeline
from .metrics import (
    Accuracy,
    ClassAgreement,
    FrechetDistance,
    InceptionScore,
    PeakSignalNoiseRatio,
    StructuralSimilarity,
)
from .vitok import VITOK_PRESETS, AutoencoderViTok, compute_latent_std, convert_vitok_original, load_vitok_v2

__all__ = [
    "CCT_PRESETS",
    "TEXT_CCT_PRESETS",
    "VITOK_PRESETS",
    "Accuracy",
    "AutoencoderViTok",
    "CCTConfig",
    "CCTForImageClassification",
    "CCTImageProcessor",
    "CCTModel",
    "ClassAgreement",
    "DiTImagePipeline",
    "DiTTransformer3DModel",
    "DiTVideoPipeline",
    "FrechetDistance",
    "InceptionScore",
    "PeakSignalNoiseRatio",
    "StructuralSimilarity",
    "TextCCTConfig",
    "TextCCTForSequenceClassification",
    "TextCCTModel",
    "compute_latent_std",
    "convert_vitok_original",
    "load_vitok_v2",
    "load_word_vectors",
    "train_word_level_tokenizer",
]
