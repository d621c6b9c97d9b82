"""Classifier agreement of class-conditional samples: the share of samples a classifier assigns to their
conditioning class (videos: the share of frames).

It measures whether a generator follows its class labels, with any image classifier: a saved
``transformers`` image-classification model (e.g. this package's ``CCTForImageClassification``) through
:meth:`ClassAgreement.from_pretrained`, or any ``pixels -> logits`` callable. When both the generator's and the
classifier's class names are known, classes are matched by name, so the two may number their classes differently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch


class PretrainedImageClassifier:
    """A saved ``transformers`` image-classification model (``AutoModelForImageClassification`` +
    ``AutoImageProcessor``) as ``pixels -> logits``, and the features its classification head reads.

    The features (``(N, D)``, float64) serve as the feature network of a Fréchet distance when no Inception weights
    are at hand (``FrechetDistance(classifier.features)``); they are the input of the model's ``classifier`` module.

    Args:
        name_or_path: a saved model folder or Hub id.
        device: where the model runs (default: CPU).

    Attributes:
        class_names: the model's ``id2label`` names, index = output id.
    """

    def __init__(self, name_or_path: str | os.PathLike, device: str | None = None) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.model = AutoModelForImageClassification.from_pretrained(name_or_path).eval().to(device or "cpu")
        self.processor = AutoImageProcessor.from_pretrained(name_or_path)
        id2label = self.model.config.id2label
        self.class_names = [id2label[index] for index in range(len(id2label))]

    @torch.no_grad()
    def logits_and_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 3, H, W)`` pixels in [0, 1] -> ``(N, K)`` logits and ``(N, D)`` float64 head inputs."""
        head = getattr(self.model, "classifier", None)
        if not isinstance(head, torch.nn.Module):
            raise ValueError(
                f"{type(self.model).__name__}: expected a `classifier` head module to read features from, got none."
            )
        images = list((pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        inputs = self.processor(images=images, return_tensors="pt").to(self.model.device)
        captured = []
        hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            logits = self.model(**inputs).logits
        finally:
            hook.remove()
        return logits, captured[0].reshape(len(images), -1).double()

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` pixels in [0, 1] -> ``(N, K)`` logits."""
        return self.logits_and_features(pixels)[0]

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` pixels in [0, 1] -> ``(N, D)`` float64 features (the classification head's input)."""
        return self.logits_and_features(pixels)[1]


class ClassAgreement:
    """Class agreement with the ``evaluate`` calling convention (``add_batch(predictions=, references=)``).

    Args:
        classifier: ``(N, 3, H, W)`` float pixels in [0, 1] -> ``(N, K)`` logits.
        class_names: the generator's class names (index = conditioning class id), or ``None``.
        classifier_class_names: the classifier's class names (index = its output id), or ``None``. With both
            name lists, a conditioning class counts as matched when the classifier predicts the class of the same
            name; otherwise ids are compared directly.
        name: key of the result.
    """

    def __init__(
        self,
        classifier: Callable[[torch.Tensor], torch.Tensor],
        class_names: Sequence[str] | None = None,
        classifier_class_names: Sequence[str] | None = None,
        name: str = "class_agreement",
    ):
        self.classifier = classifier
        self.name = name
        self.class_to_classifier_id = None
        if class_names is not None and classifier_class_names is not None:
            classifier_ids = {str(label): index for index, label in enumerate(classifier_class_names)}
            missing = [label for label in class_names if str(label) not in classifier_ids]
            if missing:
                raise ValueError(
                    f"classifier_class_names: expected every generator class among the classifier's classes "
                    f"{list(classifier_class_names)}, missing {missing}."
                )
            self.class_to_classifier_id = torch.tensor([classifier_ids[str(label)] for label in class_names])
        self.matches: list[torch.Tensor] = []

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        device: str | None = None,
        name: str = "class_agreement",
    ) -> ClassAgreement:
        """Use a saved image-classification model (:class:`PretrainedImageClassifier`)."""
        classifier = PretrainedImageClassifier(name_or_path, device=device)
        return cls(classifier, class_names, classifier.class_names, name=name)

    @torch.no_grad()
    def add_batch(self, *, predictions: torch.Tensor | np.ndarray, references: Sequence[int] | torch.Tensor) -> None:
        """Classify generated samples.

        Args:
            predictions: images ``(B, 3, H, W)`` or videos ``(B, T, 3, H, W)`` in [0, 1] (the ``output_type="pt"``
                layout of ``DiTImagePipeline`` / ``DiTVideoPipeline``).
            references: ``(B,)`` conditioning class ids.
        """
        pixels = torch.as_tensor(predictions)
        labels = torch.as_tensor(references).reshape(-1)
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise TypeError(f"references: expected integer class ids, got dtype {labels.dtype}.")
        if pixels.ndim not in (4, 5) or pixels.shape[-3] != 3:
            raise ValueError(
                "predictions: expected images (B, 3, H, W) or videos (B, T, 3, H, W), got shape "
                f"{tuple(pixels.shape)}."
            )
        if pixels.shape[0] != labels.shape[0]:
            raise ValueError(
                f"references: expected {pixels.shape[0]} class ids (one per sample), got {labels.shape[0]}."
            )
        if pixels.ndim == 5:  # every frame carries its clip's class
            labels = labels.repeat_interleave(pixels.shape[1])
            pixels = pixels.flatten(0, 1)
        if self.class_to_classifier_id is not None:
            if labels.min() < 0 or labels.max() >= len(self.class_to_classifier_id):
                raise ValueError(
                    f"references: expected class ids in [0, {len(self.class_to_classifier_id) - 1}], got "
                    f"[{labels.min().item()}, {labels.max().item()}]."
                )
            labels = self.class_to_classifier_id[labels]
        predicted = self.classifier(pixels.float()).argmax(dim=-1).cpu()
        self.matches.append(predicted == labels.cpu())

    def compute(
        self, *, predictions: torch.Tensor | None = None, references: Sequence[int] | None = None
    ) -> dict[str, float]:
        """``{name: share of matching samples (frames)}``; then resets."""
        if predictions is not None:
            self.add_batch(predictions=predictions, references=references)
        if not self.matches:
            raise ValueError("ClassAgreement: expected samples from add_batch before compute, got none.")
        agreement = float(torch.cat(self.matches).float().mean())
        self.matches = []
        return {self.name: agreement}
