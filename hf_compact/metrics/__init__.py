"""Evaluation metrics that work offline, with the ``evaluate.Metric`` calling convention."""

# --- classification (CCT) ---
from .accuracy import Accuracy

# --- reconstruction (ViTok) ---
from .frechet import FeatureStatistics, FrechetDistance, TorchScriptFeatureExtractor, frechet_distance
from .psnr import PeakSignalNoiseRatio
from .ssim import StructuralSimilarity

# isort: split
# --- generation (DiT) ---
from .class_agreement import ClassAgreement, PretrainedImageClassifier
from .inception_score import InceptionScore, inception_score_from_probabilities

__all__ = [
    "Accuracy",
    "ClassAgreement",
    "FeatureStatistics",
    "FrechetDistance",
    "InceptionScore",
    "PeakSignalNoiseRatio",
    "PretrainedImageClassifier",
    "StructuralSimilarity",
    "TorchScriptFeatureExtractor",
    "frechet_distance",
    "inception_score_from_probabilities",
]
