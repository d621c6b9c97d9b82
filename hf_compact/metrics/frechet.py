"""Fréchet distance between feature distributions (rFID / rFVD for reconstructions, gFID / gFVD for samples).

The pieces are independent so a generation script can reuse them:

* a feature network maps pixels to (N, D) features: any callable, e.g. :class:`TorchScriptFeatureExtractor`
  around the TorchScript Inception-v3 that clean-fid / StyleGAN3 ship (``inception-2015-12-05.pt``) or an
  I3D for videos;
* :class:`FeatureStatistics` accumulates the mean and covariance of features (and can be saved, so the
  reference statistics of a dataset are computed once);
* :func:`frechet_distance` compares two statistics;
* :class:`FrechetDistance` wires them with the ``evaluate.Metric`` protocol
  (``add_batch(predictions=, references=)`` then ``compute()``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from safetensors.torch import load_file, save_file
from torch import nn

from ..utils import resolve_weight_file


class FeatureStatistics:
    """Running mean and covariance of (N, D) feature batches, accumulated in float64."""

    def __init__(self) -> None:
        self.feature_sum: torch.Tensor | None = None
        self.outer_product_sum: torch.Tensor | None = None
        self.num_samples = 0

    def update(self, features: torch.Tensor) -> None:
        """Add (N, D) features."""
        if features.ndim != 2:
            raise ValueError(f"features: expected a (N, D) tensor, got shape {tuple(features.shape)}.")
        features = features.detach().double()
        if self.feature_sum is None:
            self.feature_sum = torch.zeros(features.shape[1], dtype=torch.float64, device=features.device)
            self.outer_product_sum = torch.zeros(
                features.shape[1], features.shape[1], dtype=torch.float64, device=features.device
            )
        elif features.shape[1] != self.feature_sum.shape[0]:
            raise ValueError(f"features: expected dimension {self.feature_sum.shape[0]}, got {features.shape[1]}.")
        self.feature_sum += features.sum(dim=0)
        self.outer_product_sum += features.T @ features
        self.num_samples += features.shape[0]

    @property
    def mean(self) -> torch.Tensor:
        """(D,) mean feature."""
        self._check_enough_samples()
        return self.feature_sum / self.num_samples

    @property
    def covariance(self) -> torch.Tensor:
        """(D, D) unbiased covariance (``numpy.cov(features, rowvar=False)``)."""
        self._check_enough_samples()
        mean = self.mean
        return (self.outer_product_sum - self.num_samples * torch.outer(mean, mean)) / (self.num_samples - 1)

    def _check_enough_samples(self) -> None:
        if self.num_samples < 2:
            raise ValueError(f"FeatureStatistics: expected at least 2 samples, got {self.num_samples}.")

    def save(self, path: str | os.PathLike) -> None:
        """Write the running sums to a ``.safetensors`` file (reload with :meth:`load` and keep updating)."""
        self._check_enough_samples()
        save_file(
            {
                "feature_sum": self.feature_sum.cpu(),
                "outer_product_sum": self.outer_product_sum.cpu(),
                "num_samples": torch.tensor(self.num_samples, dtype=torch.int64),
            },
            str(path),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStatistics:
        tensors = load_file(str(path))
        expected = {"feature_sum", "outer_product_sum", "num_samples"}
        if set(tensors) != expected:
            raise ValueError(f"path: expected a statistics file with keys {sorted(expected)}, got {sorted(tensors)}.")
        statistics = cls()
        statistics.feature_sum = tensors["feature_sum"]
        statistics.outer_product_sum = tensors["outer_product_sum"]
        statistics.num_samples = int(tensors["num_samples"])
        return statistics


def _symmetric_matrix_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp_min(0).sqrt()) @ eigenvectors.T


def frechet_distance(
    mean_1: torch.Tensor, covariance_1: torch.Tensor, mean_2: torch.Tensor, covariance_2: torch.Tensor
) -> float:
    """``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between two Gaussians, in float64.

    ``Tr((S1 S2)^(1/2))`` is computed as the trace of the symmetric ``(S1^(1/2) S2 S1^(1/2))^(1/2)``, which has
    the same eigenvalues; this avoids the complex round-off of a general matrix square root.
    """
    if mean_1.shape != mean_2.shape or covariance_1.shape != covariance_2.shape:
        raise ValueError(
            f"mean_2, covariance_2: expected shapes {tuple(mean_1.shape)} and {tuple(covariance_1.shape)}, got "
            f"{tuple(mean_2.shape)} and {tuple(covariance_2.shape)}."
        )
    mean_1, mean_2 = mean_1.double(), mean_2.double()
    covariance_1, covariance_2 = covariance_1.double(), covariance_2.double()
    sqrt_covariance_1 = _symmetric_matrix_sqrt(covariance_1)
    cross = sqrt_covariance_1 @ covariance_2 @ sqrt_covariance_1
    trace_sqrt_product = torch.linalg.eigvalsh((cross + cross.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mean_1 - mean_2).pow(2).sum() + covariance_1.trace() + covariance_2.trace() - 2 * trace_sqrt_product
    return float(distance)


class TorchScriptFeatureExtractor(nn.Module):
    """A TorchScript feature network (Inception-v3 for FID, I3D for FVD) behind a ``pixels -> features`` call.

    Args:
        module: the scripted network.
        input_range: pixel range the network expects; inputs in ``pixel_range`` are mapped to it.
            StyleGAN3's / clean-fid's Inception takes (0, 255) and resizes internally.
        call_kwargs: keyword arguments of every call, e.g. ``{"return_features": True}``.
        pixel_range: range of the pixels given to :meth:`forward` (ViTok: (-1, 1)).
    """

    def __init__(
        self,
        module: torch.jit.ScriptModule | nn.Module,
        input_range: tuple[float, float] = (0.0, 255.0),
        call_kwargs: dict | None = None,
        pixel_range: tuple[float, float] = (-1.0, 1.0),
    ):
        super().__init__()
        self.module = module
        self.input_range = input_range
        self.pixel_range = pixel_range
        self.call_kwargs = dict(call_kwargs or {})

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        filename: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        *,
        trust_torchscript_code: bool = False,
        revision: str | None = None,
        **kwargs,
    ) -> TorchScriptFeatureExtractor:
        """Load a TorchScript file (``torch.jit.load``) from a path, a folder + filename or a Hub repo + filename.

        Loading a TorchScript archive runs the code it contains (a crafted archive can write files or execute
        commands), so it needs ``trust_torchscript_code=True``, as ``trust_remote_code`` in transformers; a Hub
        repository must also be pinned to a commit (``revision``, 40 hex digits), so that what was reviewed is
        what runs.

        Args:
            name_or_path: a TorchScript file, a folder holding ``filename``, or a Hub repo id.
            filename: the file inside the folder or repository.
            cache_dir: Hub cache folder.
            trust_torchscript_code: consent to run the archive's code; loading is refused without it.
            revision: the commit of a Hub repository (required for Hub sources).
            kwargs: go to the constructor (``input_range``, ``call_kwargs``, ``pixel_range``).

        Raises:
            ValueError: no consent, an unpinned Hub source, or a file that is not a TorchScript archive.
        """
        if not trust_torchscript_code:
            raise ValueError(
                f"trust_torchscript_code: loading the TorchScript network {str(name_or_path)!r} runs the code it "
                "contains; pass trust_torchscript_code=True (--trust_torchscript_code) only for a file you trust, "
                "got False."
            )
        if Path(name_or_path).exists():
            path = resolve_weight_file(name_or_path, filename, cache_dir)
        else:
            if revision is None or not re.fullmatch(r"[0-9a-f]{40}", revision):
                raise ValueError(
                    f"revision: a TorchScript network from the Hub ({str(name_or_path)!r}) must be pinned to a commit "
                    f"(40 hex digits), got {revision!r}."
                )
            if filename is None:
                raise ValueError(
                    f"filename: expected the name of a file inside the Hub repo {str(name_or_path)!r}, got None."
                )
            path = Path(hf_hub_download(str(name_or_path), filename, revision=revision, cache_dir=cache_dir))
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as error:
            raise ValueError(
                f"name_or_path: expected a TorchScript archive at {path}, could not load it: {error}"
            ) from error
        return cls(module.eval(), **kwargs)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images or (B, 3, T, H, W) videos in ``pixel_range`` -> (B, D) float32 features."""
        (pixel_low, pixel_high), (input_low, input_high) = self.pixel_range, self.input_range
        unit = (pixel_values.float() - pixel_low) / (pixel_high - pixel_low)
        features = self.module(unit.clamp(0, 1) * (input_high - input_low) + input_low, **self.call_kwargs)
        return features.float().flatten(1)


class FrechetDistance:
    """Fréchet distance between features of predictions and references (rFID / rFVD), ``evaluate`` protocol.

    Args:
        feature_extractor: ``pixels -> (N, D) features``, e.g. :class:`TorchScriptFeatureExtractor`.
        reference_statistics: precomputed statistics of the references (then ``add_batch`` needs no
            ``references``, as for gFID against a dataset).
        name: key of the result (``"rfid"``, ``"rfvd"``, ``"gfid"``...).

    Example:
        >>> inception = TorchScriptFeatureExtractor.from_pretrained("path/to/inception-2015-12-05.pt",
        ...     trust_torchscript_code=True, call_kwargs={"return_features": True})
        >>> rfid = FrechetDistance(inception, name="rfid")
        >>> rfid.add_batch(predictions=reconstructions, references=images)
        >>> rfid.compute()
        {'rfid': 3.1}
    """

    def __init__(
        self,
        feature_extractor: Callable[[torch.Tensor], torch.Tensor],
        reference_statistics: FeatureStatistics | None = None,
        name: str = "frechet_distance",
    ):
        self.feature_extractor = feature_extractor
        self.fixed_reference_statistics = reference_statistics
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.prediction_statistics = FeatureStatistics()
        self.reference_statistics = self.fixed_reference_statistics or FeatureStatistics()

    def add_batch(self, *, predictions: torch.Tensor, references: torch.Tensor | None = None) -> None:
        """Add a batch of pixels (any layout the feature extractor takes) and, optionally, its references."""
        self.prediction_statistics.update(self.feature_extractor(predictions))
        if references is not None:
            if self.fixed_reference_statistics is not None:
                raise ValueError("references: expected None since reference_statistics were given, got a tensor.")
            self.reference_statistics.update(self.feature_extractor(references))

    def compute(
        self, *, predictions: torch.Tensor | None = None, references: torch.Tensor | None = None
    ) -> dict[str, float]:
        """``{name: distance}`` over everything added (plus the optional last batch); then resets."""
        if predictions is not None:
            self.add_batch(predictions=predictions, references=references)
        distance = frechet_distance(
            self.prediction_statistics.mean,
            self.prediction_statistics.covariance,
            self.reference_statistics.mean,
            self.reference_statistics.covariance,
        )
        self.reset()
        return {self.name: distance}
