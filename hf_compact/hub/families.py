"""The four model families that get a model card, and which family an object belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from diffusers import DiffusionPipeline, DiTTransformer2DModel
from transformers import PreTrainedModel

from ..cct import CCTConfig, CCTModel
from ..cct.configuration_text_cct import TextCCTConfig
from ..cct.modeling_text_cct import TextCCTModel
from ..dit import DiTTransformer3DModel
from ..vitok import AutoencoderViTok


@dataclass(frozen=True)
class EvaluationMetric:
    """How a metric of a run's results (key without the `eval_` prefix) appears in the model-index."""

    type: str
    name: str


@dataclass(frozen=True)
class CardFamily:
    """Metadata shared by every card of one family; `template` is a file in `model_cards/`."""

    name: str
    template: str
    library_name: str
    pipeline_tag: str | None
    task_type: str
    tags: tuple[str, ...]
    evaluation_metrics: dict[str, EvaluationMetric] = field(default_factory=dict)


_CLASSIFICATION_METRICS = {
    "accuracy": EvaluationMetric("accuracy", "Top-1 accuracy"),
    "top_5_accuracy": EvaluationMetric("accuracy", "Top-5 accuracy"),
}

# Every family is uploaded with its modelling code (`custom_code`): CCT and Text CCT load with plain transformers,
# ViTok, the video DiT and the DiT pipelines with plain diffusers (`trust_remote_code=True`).
CCT = CardFamily(
    name="cct",
    template="cct.md",
    library_name="transformers",
    pipeline_tag="image-classification",
    task_type="image-classification",
    tags=("hf_compact", "cct", "compact-transformers", "vision", "custom_code"),
    evaluation_metrics=_CLASSIFICATION_METRICS,
)
TEXT_CCT = CardFamily(
    name="text_cct",
    template="text_cct.md",
    library_name="transformers",
    pipeline_tag="text-classification",
    task_type="text-classification",
    tags=("hf_compact", "text-cct", "compact-transformers", "custom_code"),
    evaluation_metrics=_CLASSIFICATION_METRICS,
)
VITOK = CardFamily(
    name="vitok",
    template="vitok.md",
    library_name="diffusers",
    pipeline_tag="image-to-image",
    task_type="image-reconstruction",
    tags=("hf_compact", "vitok", "autoencoder", "custom_code"),
    evaluation_metrics={
        "psnr": EvaluationMetric("psnr", "PSNR (dB)"),
        "ssim": EvaluationMetric("ssim", "SSIM"),
        "rfid": EvaluationMetric("fid", "rFID"),
        "rfvd": EvaluationMetric("fvd", "rFVD"),
    },
)
DIT = CardFamily(
    name="dit",
    template="dit.md",
    library_name="diffusers",
    pipeline_tag="unconditional-image-generation",
    task_type="class-conditional-generation",
    tags=("hf_compact", "dit", "vitok", "class-conditional", "custom_code"),
    evaluation_metrics={
        "class_agreement": EvaluationMetric("accuracy", "Class agreement (held-out classifier)"),
        "video_class_agreement": EvaluationMetric("accuracy", "Class agreement per frame (held-out classifier)"),
        "gfid": EvaluationMetric("fid", "gFID"),
        "gfvd": EvaluationMetric("fvd", "gFVD"),
        "gis": EvaluationMetric("inception_score", "gIS"),
    },
)
# Backbones without a classification head (`CCTModel`, `TextCCTModel`) are feature extractors.
CCT_BACKBONE = replace(CCT, pipeline_tag="image-feature-extraction", task_type="image-feature-extraction")
TEXT_CCT_BACKBONE = replace(TEXT_CCT, pipeline_tag="feature-extraction", task_type="feature-extraction")
# The Hub has no pipeline tags for video autoencoders or class-conditional video generation.
VITOK_VIDEO = replace(
    VITOK,
    name="vitok_video",
    pipeline_tag=None,
    task_type="video-reconstruction",
    tags=(*VITOK.tags, "video"),
)
DIT_VIDEO = replace(
    DIT,
    name="dit_video",
    pipeline_tag=None,
    task_type="class-conditional-video-generation",
    tags=(*DIT.tags, "video"),
)
FAMILIES = (CCT, TEXT_CCT, VITOK, VITOK_VIDEO, DIT, DIT_VIDEO)

_DIT_TRANSFORMERS = (DiTTransformer2DModel, DiTTransformer3DModel)


def card_family(model_or_pipeline: object) -> CardFamily:
    """The family of a model or pipeline of this package.

    Raises:
        TypeError: for any other object.
    """
    if isinstance(model_or_pipeline, PreTrainedModel):
        is_backbone = isinstance(model_or_pipeline, (CCTModel, TextCCTModel))
        if isinstance(model_or_pipeline.config, TextCCTConfig):
            return TEXT_CCT_BACKBONE if is_backbone else TEXT_CCT
        if isinstance(model_or_pipeline.config, CCTConfig):
            return CCT_BACKBONE if is_backbone else CCT
    if isinstance(model_or_pipeline, AutoencoderViTok):
        return VITOK_VIDEO if model_or_pipeline.config.tubelet_size > 1 else VITOK
    transformer = getattr(model_or_pipeline, "transformer", model_or_pipeline)
    if isinstance(model_or_pipeline, (*_DIT_TRANSFORMERS, DiffusionPipeline)) and isinstance(
        transformer, _DIT_TRANSFORMERS
    ):
        return DIT_VIDEO if isinstance(transformer, DiTTransformer3DModel) else DIT
    raise TypeError(
        "model_or_pipeline: expected a CCT / Text CCT model, an AutoencoderViTok, a DiT transformer or a DiT "
        f"pipeline of hf_compact, got {type(model_or_pipeline).__name__}."
    )
