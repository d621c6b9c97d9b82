"""The CCT vision family (ViT-Lite, CVT, CCT) as `transformers` models, registered with the `Auto*` classes."""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
)

from .configuration_cct import CCT_PRESETS, CCTConfig
from .image_processing_cct import CCTImageProcessor
from .modeling_cct import (
    CCTEncoder,
    CCTForImageClassification,
    CCTLayer,
    CCTModel,
    CCTPreTrainedModel,
    CCTSelfAttention,
    CCTSequencePooling,
    sinusoidal_position_table,
)

AutoConfig.register(CCTConfig.model_type, CCTConfig, exist_ok=True)
AutoModel.register(CCTConfig, CCTModel, exist_ok=True)
AutoModelForImageClassification.register(CCTConfig, CCTForImageClassification, exist_ok=True)
AutoImageProcessor.register(CCTConfig, image_processor_classes={"pil": CCTImageProcessor}, exist_ok=True)

__all__ = [
    "CCT_PRESETS",
    "CCTConfig",
    "CCTEncoder",
    "CCTForImageClassification",
    "CCTImageProcessor",
    "CCTLayer",
    "CCTModel",
    "CCTPreTrainedModel",
    "CCTSelfAttention",
    "CCTSequencePooling",
    "sinusoidal_position_table",
]
