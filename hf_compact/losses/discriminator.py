"""StyleGAN-style residual discriminator used in ViTok stage 2 (decoder fine-tuning with a GAN)."""

from __future__ import annotations

import math

import torch
from kornia.filters import BlurPool2D
from torch import nn

from ..utils import fold_frames_into_batch


class DiscriminatorResidualBlock(nn.Module):
    """Two 3x3 convs and a blurred 2x downsample, plus a blurred 1x1-conv skip; the sum is scaled by 1/sqrt(2).

    Args:
        in_channels: channels of the (B, in_channels, H, W) input.
        out_channels: channels of the (B, out_channels, H/2, W/2) output.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.activation = nn.LeakyReLU(0.2)
        # 4-tap binomial [1, 3, 3, 1] blur then stride 2 (anti-aliased downsampling, Zhang 2019 / StyleGAN2).
        self.downsample = BlurPool2D(kernel_size=4, stride=2)
        self.skip = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        skip = self.skip(self.downsample(hidden_states))
        hidden_states = self.activation(self.conv1(hidden_states))
        hidden_states = self.activation(self.conv2(self.downsample(hidden_states)))
        return (hidden_states + skip) / math.sqrt(2.0)


class StyleGANDiscriminator(nn.Module):
    """Residual CNN discriminator (StyleGAN2 layout, as in ViTok stage 2), scoring images or video frames.

    A 3x3 conv stem, one residual block per halving down to 4x4, then FC(C*16 -> C) -> LeakyReLU -> FC(C -> 1).
    Channels at resolution ``r`` are ``min(max_channels, base_channels * 256 // r)``; the defaults give ViTok's
    filters {256: 64, 128: 128, 64: 256, <=32: 512}.

    Args:
        resolution: side of the square input images (a power of two, at least 8).
        base_channels: channels at resolution 256 (64 in ViTok).
        max_channels: channel cap (512 in ViTok).
    """

    def __init__(self, resolution: int = 256, base_channels: int = 64, max_channels: int = 512):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution: expected a power of two >= 8, got {resolution}.")
        self.resolution = resolution

        def channels_at(size: int) -> int:
            return max(1, min(max_channels, base_channels * 256 // size))

        self.stem = nn.Sequential(nn.Conv2d(3, channels_at(resolution), kernel_size=3, padding=1), nn.LeakyReLU(0.2))
        sizes = [resolution // 2**level for level in range(int(math.log2(resolution // 4)) + 1)]
        self.blocks = nn.ModuleList(
            DiscriminatorResidualBlock(channels_at(size), channels_at(size // 2)) for size in sizes[:-1]
        )
        final_channels = channels_at(4)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(final_channels * 4 * 4, final_channels),
            nn.LeakyReLU(0.2),
            nn.Linear(final_channels, 1),
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Real/fake logits.

        Args:
            pixel_values: (B, 3, R, R) images or (B, 3, T, R, R) videos in [-1, 1], R = ``resolution``.

        Returns:
            (B,) logits for images, (B*T,) per-frame logits for videos.
        """
        frames = fold_frames_into_batch(pixel_values)
        if frames.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(
                f"pixel_values: expected frames of shape (3, {self.resolution}, {self.resolution}), "
                f"got {tuple(frames.shape[1:])}."
            )
        hidden_states = self.stem(frames)
        for block in self.blocks:
            hidden_states = block(hidden_states)
        return self.head(hidden_states).squeeze(1)
