"""What the training recipes in ``training/`` share beyond data loading: building a classifier and its processor
from a preset or a saved model, for the vision and the text CCT family."""

from .image_classification import build_image_classifier, build_image_processor, change_resolution
from .text_classification import build_text_classifier, build_text_tokenizer, tokenize_for_classification

__all__ = [
    "build_image_classifier",
    "build_image_processor",
    "build_text_classifier",
    "build_text_tokenizer",
    "change_resolution",
    "tokenize_for_classification",
]
