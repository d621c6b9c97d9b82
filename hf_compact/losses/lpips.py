"""LPIPS perceptual distance (Zhang et al. 2018, VGG16 variant), the ``eta * L_LPIPS`` term of ViTok.

Numerics follow the ``lpips`` package: inputs in [-1, 1] are shifted and scaled to ImageNet statistics,
VGG16 activations at five ReLUs are unit-normalised over channels, their squared differences are weighted
by learned 1x1 convolutions (``lin0`` ... ``lin4``), averaged over space and summed over layers.

Real weights have two parts: torchvision's ImageNet VGG16 (``features.N.weight``) and the lpips package's
linear layers (``lin0.model.1.weight`` ...). Both load through :meth:`LPIPS.from_pretrained` from a local
folder or a Hub repository. A network without them gives meaningless distances, so it refuses to run
unless it was built with ``allow_random_weights=True`` (for tests and smoke runs).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..utils import check_state_dict, fold_frames_into_batch, load_state_dict_file, resolve_weight_file
from .vgg import VGG16_LPIPS_CHANNELS, VGG16Features

# lpips' ScalingLayer: maps [-1, 1] inputs to ImageNet mean/std normalisation.
IMAGENET_SHIFT = (-0.030, -0.088, -0.188)
IMAGENET_SCALE = (0.458, 0.448, 0.450)


class LPIPSLinearProbe(nn.Module):
    """1x1 conv (no bias) weighting the channels of one layer's squared feature difference.

    The ``Dropout -> Conv2d`` order reproduces the lpips package's parameter name ``model.1.weight``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, squared_difference: torch.Tensor) -> torch.Tensor:
        return self.model(squared_difference)


class LPIPS(nn.Module):
    """Frozen LPIPS-VGG16 distance between two batches of images (or videos, frame by frame).

    Args:
        allow_random_weights: let the network run before real weights are loaded (scores are then not
            perceptual; use only to exercise code).
        eps: added inside the channel norm, as in the lpips package (``1e-10``).
    """

    def __init__(self, allow_random_weights: bool = False, eps: float = 1e-10):
        super().__init__()
        self.register_buffer("shift", torch.tensor(IMAGENET_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(IMAGENET_SCALE).view(1, 3, 1, 1), persistent=False)
        self.backbone = VGG16Features()
        for index, channels in enumerate(VGG16_LPIPS_CHANNELS):
            self.add_module(f"lin{index}", LPIPSLinearProbe(channels))
        self.allow_random_weights = allow_random_weights
        self.has_pretrained_backbone = False
        self.has_pretrained_linear_layers = False
        self.eps = eps
        self.requires_grad_(False)
        self.eval()

    @property
    def linear_probes(self) -> list[LPIPSLinearProbe]:
        return [getattr(self, f"lin{index}") for index in range(len(VGG16_LPIPS_CHANNELS))]

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        backbone_filename: str = "vgg16.pth",
        linear_filename: str = "vgg.pth",
        cache_dir: str | os.PathLike | None = None,
    ) -> LPIPS:
        """Build LPIPS with real weights from a local folder or a Hub repo id.

        Args:
            name_or_path: folder or Hub repository holding both files.
            backbone_filename: torchvision ``vgg16`` state dict (``.pth`` or ``.safetensors``).
            linear_filename: lpips linear-layer weights (``lpips/weights/v0.1/vgg.pth``).
            cache_dir: Hub cache folder.
        """
        lpips = cls()
        lpips.load_backbone_state_dict(
            load_state_dict_file(resolve_weight_file(name_or_path, backbone_filename, cache_dir))
        )
        lpips.load_linear_state_dict(
            load_state_dict_file(resolve_weight_file(name_or_path, linear_filename, cache_dir))
        )
        return lpips

    def load_backbone_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load torchvision's ``vgg16`` ImageNet weights (``features.N.weight`` / ``.bias``)."""
        self.backbone.load_torchvision_state_dict(state_dict)
        self.has_pretrained_backbone = True

    def load_linear_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load the lpips package's linear layers (``lin0.model.1.weight`` ... ``lin4.model.1.weight``)."""
        probes = nn.ModuleDict({f"lin{index}": probe for index, probe in enumerate(self.linear_probes)})
        check_state_dict(state_dict, probes, "the lpips linear-layer state dict", target="the LPIPS linear probes")
        probes.load_state_dict(state_dict)
        self.has_pretrained_linear_layers = True

    def train(self, mode: bool = True) -> LPIPS:
        """LPIPS stays in eval mode (no dropout) whatever the surrounding model does."""
        return super().train(False)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Distance per image.

        Args:
            input: (B, 3, H, W) images or (B, 3, T, H, W) videos in [-1, 1].
            target: same shape as ``input``.

        Returns:
            (B,) distances for images, (B*T,) per-frame distances for videos.
        """
        if not (self.has_pretrained_backbone and self.has_pretrained_linear_layers) and not self.allow_random_weights:
            raise RuntimeError(
                "LPIPS has no pretrained weights: load them with LPIPS.from_pretrained(folder_or_repo_id), or build "
                "LPIPS(allow_random_weights=True) to run with a randomly initialised network on purpose."
            )
        if input.shape != target.shape:
            raise ValueError(f"target: expected the shape of input {tuple(input.shape)}, got {tuple(target.shape)}.")
        input, target = fold_frames_into_batch(input), fold_frames_into_batch(target)
        if input.shape[1] != 3:
            raise ValueError(f"input: expected 3 (RGB) channels, got {input.shape[1]}.")
        batch_size = input.shape[0]
        both = torch.cat([input, target]).to(self.shift.dtype)
        activations = self.backbone((both - self.shift) / self.scale)
        distance = torch.zeros(batch_size, device=input.device, dtype=activations[0].dtype)
        for probe, activation in zip(self.linear_probes, activations):
            unit = activation / (activation.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps)
            input_unit, target_unit = unit.split(batch_size)
            distance = distance + probe((input_unit - target_unit).pow(2)).mean(dim=(1, 2, 3))
        return distance
