"""The CCT family as `transformers` models: vision (ViT-Lite, CVT, CCT) and text (TextTransformerLite, TextViTLite,
TextCVT, TextCCT).

Importing this package registers every configuration, model and the image processor with the `Auto*` classes (the
model files themselves register nothing: `register_for_auto_class` copies them for `trust_remote_code` users).
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from .configuration_cct import CCT_PRESETS, CCTConfig
from .configuration_text_cct import TEXT_CCT_PRESETS, TextCCTConfig
from .image_processing_cct import CCTImageProcessor
from .modeling_cct import (
    CCTConvEmbeddings,
    CCTEncoder,
    CCTForImageClassification,
    CCTLayer,
    CCTModel,
    CCTPreTrainedModel,
    CCTSelfAttention,
    CCTSequencePooling,
    sinusoidal_position_table,
)
from .modeling_text_cct import (
    TextCCTConvEmbeddings,
    TextCCTForSequenceClassification,
    TextCCTModel,
    TextCCTPreTrainedModel,
)

AutoConfig.register(CCTConfig.model_type, CCTConfig, exist_ok=True)
AutoModel.register(CCTConfig, CCTModel, exist_ok=True)
AutoModelForImageClassification.register(CCTConfig, CCTForImageClassification, exist_ok=True)
AutoImageProcessor.register(CCTConfig, image_processor_classes={"pil": CCTImageProcessor}, exist_ok=True)
AutoConfig.register(TextCCTConfig.model_type, TextCCTConfig, exist_ok=True)
AutoModel.register(TextCCTConfig, TextCCTModel, exist_ok=True)
AutoModelForSequenceClassification.register(TextCCTConfig, TextCCTForSequenceClassification, exist_ok=True)

__all__ = [
    "CCT_PRESETS",
    "TEXT_CCT_PRESETS",
    "CCTConfig",
    "CCTConvEmbeddings",
    "CCTEncoder",
    "CCTForImageClassification",
    "CCTImageProcessor",
    "CCTLayer",
    "CCTModel",
    "CCTPreTrainedModel",
    "CCTSelfAttention",
    "CCTSequencePooling",
    "TextCCTConfig",
    "TextCCTConvEmbeddings",
    "TextCCTForSequenceClassification",
    "TextCCTModel",
    "TextCCTPreTrainedModel",
    "sinusoidal_position_table",
]
