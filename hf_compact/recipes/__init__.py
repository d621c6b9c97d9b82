"""What the training recipes in ``training/`` share beyond data loading: building a classifier and its processor
from a preset or a saved model (vision and text CCT), and the autoencoder's training forward and reconstruction
evaluation (ViTok)."""

from .image_classification import (
    build_image_classifier,
    build_image_processor,
    change_resolution,
    image_classification_data,
    image_classifier,
)
from .reconstruction import AutoencoderTrainingForward, evaluate_reconstruction, save_reconstruction_grid
from .text_classification import (
    build_text_classifier,
    build_text_tokenizer,
    text_classification_data,
    text_classifier,
    tokenize_for_classification,
)

__all__ = [
    "AutoencoderTrainingForward",
    "build_image_classifier",
    "build_image_processor",
    "build_text_classifier",
    "build_text_tokenizer",
    "change_resolution",
    "evaluate_reconstruction",
    "image_classification_data",
    "image_classifier",
    "save_reconstruction_grid",
    "text_classification_data",
    "text_classifier",
    "tokenize_for_classification",
]
