"""Images and video clips for autoencoder (ViTok) training, as tensors in [-1, 1].

* Images: any ``datasets`` dataset with an image column (Hub name, ``imagefolder`` folder, or the bundled
  scikit-learn digits), with ViTok's training augmentation (random-resized crop of 80-100% of the area and a
  horizontal flip) or its evaluation preprocessing (shorter side resized, centre crop).
* Videos: a folder of video files (decoded with PyAV) or of frame folders (one image file per frame), or videos
  in memory (uint8 arrays); each item is a clip of ``num_frames`` frames ``frame_stride`` apart, resized and
  cropped like the images.

Augmentations draw from a generator seeded by (seed, epoch, item index) rather than from the global RNG,
so an item is identical whether it is loaded in a straight run or after resuming from a checkpoint (the
global RNG would be consumed differently by the data loader's prefetching).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..utils import derive_seed
from .images import read_image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".gif")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image (any mode, 16-bit and float included: :func:`.images.read_image`) -> (3, H, W) float tensor in
    [0, 1]."""
    return torch.from_numpy(read_image(image)).permute(2, 0, 1).contiguous()


def resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, anti-aliased resize of (..., H, W) pixels to ``size = (height, width)``; pixels of that size
    already are returned as they are (the resize would be the identity, bit for bit)."""
    if tuple(pixels.shape[-2:]) == tuple(size):
        return pixels
    leading = pixels.shape[:-2]
    flat = pixels.reshape(-1, 1, *pixels.shape[-2:])
    resized = F.interpolate(flat, size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized.reshape(*leading, *size)


def resize_shorter_side(pixels: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize (..., H, W) pixels so that min(H, W) == ``resolution``, keeping the aspect ratio."""
    height, width = pixels.shape[-2:]
    scale = resolution / min(height, width)
    return resize(pixels, (max(resolution, round(height * scale)), max(resolution, round(width * scale))))


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high, (), generator=generator).item())


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def crop(
    pixels: torch.Tensor, resolution: int, random: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A ``resolution`` x ``resolution`` crop of (..., H, W) pixels (random or centred)."""
    height, width = pixels.shape[-2:]
    if random:
        top = _randint(height - resolution + 1, generator)
        left = _randint(width - resolution + 1, generator)
    else:
        top, left = (height - resolution) // 2, (width - resolution) // 2
    return pixels[..., top : top + resolution, left : left + resolution]


def random_resized_crop(
    pixels: torch.Tensor,
    resolution: int,
    scale: tuple[float, float] = (0.8, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Crop a random box of ``scale`` x the area and ``ratio`` aspect, resized to ``resolution`` (torchvision's
    ``RandomResizedCrop`` sampling: 10 tries, then the largest centred box with a valid aspect)."""
    height, width = pixels.shape[-2:]
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * _uniform(*scale, generator)
        aspect = math.exp(_uniform(*log_ratio, generator))
        box_width = round(math.sqrt(target_area * aspect))
        box_height = round(math.sqrt(target_area / aspect))
        if 0 < box_width <= width and 0 < box_height <= height:
            top = _randint(height - box_height + 1, generator)
            left = _randint(width - box_width + 1, generator)
            break
    else:
        box_width, box_height = width, height
        if width / height < ratio[0]:
            box_height = round(width / ratio[0])
        elif width / height > ratio[1]:
            box_width = round(height * ratio[1])
        top, left = (height - box_height) // 2, (width - box_width) // 2
    box = pixels[..., top : top + box_height, left : left + box_width]
    return resize(box, (resolution, resolution))


def random_horizontal_flip(pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return pixels.flip(-1) if torch.rand((), generator=generator).item() < 0.5 else pixels


def to_signed_range(pixels: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (ViTok's normalisation: mean 0.5, std 0.5)."""
    return pixels * 2.0 - 1.0


class ImageReconstructionTransform:
    """PIL image -> (3, R, R) tensor in [-1, 1].

    Args:
        resolution: output side R.
        train: random-resized crop (``scale`` of the area) + horizontal flip; otherwise shorter side resized
            to R and a centre crop.
        scale: area range of the training crop (ViTok: 0.8-1.0).
    """

    def __init__(self, resolution: int, train: bool, scale: tuple[float, float] = (0.8, 1.0)):
        if resolution < 1:
            raise ValueError(f"resolution: expected a positive side length, got {resolution}.")
        self.resolution, self.train, self.scale = resolution, train, scale

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        pixels = pil_to_tensor(image)
        if self.train:
            pixels = random_resized_crop(pixels, self.resolution, self.scale, generator=generator)
            pixels = random_horizontal_flip(pixels, generator)
        else:
            pixels = crop(resize_shorter_side(pixels, self.resolution), self.resolution, random=False)
        return to_signed_range(pixels.clamp(0.0, 1.0))


class SeededAugmentationDataset(torch.utils.data.Dataset):
    """Base for datasets whose item ``i`` in epoch ``e`` is augmented with a generator seeded by (seed, e, i)."""

    def __init__(self, seed: int):
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def generator_for(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, index))


class ImageReconstructionDataset(SeededAugmentationDataset):
    """Items ``{"pixel_values": (3, R, R)}`` in [-1, 1] from the image column of a ``datasets.Dataset``.

    Args:
        dataset: a ``datasets.Dataset`` (or any sequence of dicts) with PIL images in ``image_column``.
        transform: :class:`ImageReconstructionTransform` (training or evaluation).
        image_column: name of the image column.
        seed: base seed of the augmentations.
    """

    def __init__(self, dataset, transform: ImageReconstructionTransform, image_column: str = "image", seed: int = 0):
        super().__init__(seed)
        column_names = getattr(dataset, "column_names", None)
        if column_names is not None and image_column not in column_names:
            raise ValueError(f"image_column: expected one of {column_names}, got {image_column!r}.")
        self.dataset, self.transform, self.image_column = dataset, transform, image_column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.dataset[index][self.image_column]
        return {"pixel_values": self.transform(image, self.generator_for(index))}


class ClipDataset(SeededAugmentationDataset):
    """Base of the video datasets: each item is ``{"pixel_values": (3, num_frames, R, R)}`` in [-1, 1], frames
    ``start, start + stride, ...`` of a video with a random start (training) or the centred clip (evaluation),
    shorter side resized to R, then a random (training, plus a horizontal flip) or centred crop shared by all
    frames. Subclasses hold the videos in ``self.videos`` and read a clip's frames (:meth:`_read_clip`)."""

    def __init__(self, num_frames: int, resolution: int, frame_stride: int, train: bool, seed: int):
        super().__init__(seed)
        if num_frames < 1 or frame_stride < 1:
            raise ValueError(
                f"num_frames, frame_stride: expected positive integers, got {num_frames} and {frame_stride}."
            )
        self.num_frames, self.resolution, self.frame_stride, self.train = num_frames, resolution, frame_stride, train
        self.clip_span = (num_frames - 1) * frame_stride + 1

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = self.generator_for(index)
        frames = self._read_clip(index, generator)
        pixels = torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)  # (3, T, H, W) in [0, 1]
        pixels = crop(resize_shorter_side(pixels, self.resolution), self.resolution, self.train, generator)
        if self.train:
            pixels = random_horizontal_flip(pixels, generator)
        return {"pixel_values": to_signed_range(pixels.clamp(0.0, 1.0))}

    def _read_clip(self, index: int, generator: torch.Generator) -> list[np.ndarray]:
        """Frames of clip ``index`` as (H, W, 3) float32 arrays in [0, 1] (drawn with :meth:`_clip_indices`)."""
        raise NotImplementedError

    def _clip_indices(self, total_frames: int, source: str, generator: torch.Generator) -> list[int]:
        if total_frames < self.clip_span:
            raise ValueError(
                f"{source}: expected at least {self.clip_span} frames for {self.num_frames} frames at stride "
                f"{self.frame_stride}, got {total_frames}."
            )
        last_start = total_frames - self.clip_span
        start = _randint(last_start + 1, generator) if self.train else last_start // 2
        return list(range(start, start + self.clip_span, self.frame_stride))


class VideoClipDataset(ClipDataset):
    """Clips from a folder of videos (files decoded with PyAV, or sub-folders of frame images), one video per item
    (see :class:`ClipDataset` for the clip and its augmentation).

    Args:
        root: folder holding video files (``.mp4``, ``.avi``, ...) and/or folders of frames (``.png``, ``.jpg``...).
        num_frames: frames per clip (T).
        resolution: output side R.
        frame_stride: distance between consecutive clip frames in the source.
        train: random clip start, crop and flip.
        seed: base seed of the augmentations.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        num_frames: int,
        resolution: int,
        frame_stride: int = 1,
        train: bool = True,
        seed: int = 0,
    ):
        super().__init__(num_frames, resolution, frame_stride, train, seed)
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"root: expected a folder of videos, got {str(root)!r}, which is not a folder.")
        self.videos, self.frame_files = [], {}  # frame folders are listed once, here
        for path in sorted(root.iterdir()):
            if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
                self.videos.append(path)
            elif path.is_dir() and (files := _frame_files(path)):
                self.videos.append(path)
                self.frame_files[path] = files
        if not self.videos:
            raise ValueError(
                f"root: expected video files {VIDEO_EXTENSIONS} or folders of frames in {root}, found none."
            )

    def _read_clip(self, index: int, generator: torch.Generator) -> list[np.ndarray]:
        path = self.videos[index]
        files = self.frame_files.get(path)
        if files is not None:
            wanted = self._clip_indices(len(files), str(path), generator)
            return [read_image(files[i]) for i in wanted]
        import av

        with av.open(str(path)) as container:
            total_frames = container.streams.video[0].frames or sum(1 for _ in container.decode(video=0))
        wanted = self._clip_indices(total_frames, str(path), generator)
        frames = []
        with av.open(str(path)) as container:
            for frame_index, frame in enumerate(container.decode(video=0)):
                if frame_index in wanted:
                    frames.append(frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0)
                if frame_index >= wanted[-1]:
                    break
        if len(frames) != len(wanted):
            raise ValueError(f"{path}: expected to decode frames {wanted}, decoded {len(frames)} of them.")
        return frames


class VideoArrayDataset(ClipDataset):
    """Clips from videos held in memory, one video per item (see :class:`ClipDataset` for the clip and its
    augmentation): e.g. the ``"video"`` column of :func:`.moving_digits.load_moving_digits_dataset` in numpy format.
    The same frames as files give the same items as :class:`VideoClipDataset`, without decoding them at every step.

    Args:
        videos: ``(N, T', H, W, 3)`` uint8 array, or a sequence of ``(T'_i, H, W, 3)`` uint8 arrays.
        num_frames / resolution / frame_stride / train / seed: as for :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        videos: np.ndarray | Sequence[np.ndarray],
        num_frames: int,
        resolution: int,
        frame_stride: int = 1,
        train: bool = True,
        seed: int = 0,
    ):
        super().__init__(num_frames, resolution, frame_stride, train, seed)
        if len(videos) == 0:
            raise ValueError("videos: expected at least one video, got none.")
        for index, video in enumerate(videos):
            if not isinstance(video, np.ndarray) or video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
                got = f"{video.dtype} array of shape {video.shape}" if isinstance(video, np.ndarray) else type(video)
                raise ValueError(f"videos[{index}]: expected a (frames, height, width, 3) uint8 array, got {got}.")
        self.videos = videos

    def _read_clip(self, index: int, generator: torch.Generator) -> list[np.ndarray]:
        video = self.videos[index]
        wanted = self._clip_indices(len(video), f"videos[{index}]", generator)
        return [read_image(frame) for frame in video[wanted]]


def _frame_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in FRAME_EXTENSIONS)
