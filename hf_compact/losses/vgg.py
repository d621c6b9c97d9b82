"""VGG16 convolutional trunk in plain torch, with torchvision's layer indices (``features.N.weight``).

torchvision does not import on every machine, so the feature network LPIPS needs is written here. The
layer list matches ``torchvision.models.vgg16().features`` index for index, so torchvision's ImageNet
state dict (``vgg16-397923af.pth``) loads unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from ..utils import check_state_dict

# Output channels of each 3x3 conv, "M" for a 2x2 max-pool (VGG configuration "D").
VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)  # fmt: skip

# Indices in ``features`` of the ReLUs LPIPS reads: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG16_LPIPS_TAPS: tuple[int, ...] = (3, 8, 15, 22, 29)
VGG16_LPIPS_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)


class VGG16Features(nn.Module):
    """The convolutional part of VGG16 up to ``relu5_3``, returning the activations at chosen ReLUs.

    Args:
        taps: indices into ``features`` whose outputs are returned (default: the five LPIPS layers).
    """

    def __init__(self, taps: tuple[int, ...] = VGG16_LPIPS_TAPS):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for entry in VGG16_LAYOUT:
            if entry == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, entry, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_channels = entry
        self.features = nn.Sequential(*layers)
        if max(taps) >= len(self.features):
            raise ValueError(f"taps: expected indices below {len(self.features)}, got {taps}.")
        self.taps = taps

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) ImageNet-normalised images -> one (B, C_i, H_i, W_i) activation per tap."""
        activations = []
        hidden_states = pixel_values
        for index, layer in enumerate(self.features[: max(self.taps) + 1]):
            hidden_states = layer(hidden_states)
            if index in self.taps:
                activations.append(hidden_states)
        return activations

    def load_torchvision_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load torchvision's ``vgg16`` weights (``features.N.*``; the ``classifier.*`` keys are ignored)."""
        features = {key: value for key, value in state_dict.items() if key.startswith("features.")}
        check_state_dict(features, self, "the torchvision vgg16 state dict")
        self.load_state_dict(features)
