"""The pieces of autoencoder (ViTok) training that evaluation and tests share with ``training/train_vitok.py``: the
training forward that wraps encode and decode, and the reconstruction evaluation (PSNR, SSIM, rFID / rFVD, a PNG
grid) that works on a sharded model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from PIL import Image
from torch import nn

from ..metrics import FrechetDistance, PeakSignalNoiseRatio, StructuralSimilarity
from ..training_utils.distributed import ShardedEMAModel, sharded_inference
from ..vitok import AutoencoderViTok


class AutoencoderTrainingForward(nn.Module):
    """One training forward of the autoencoder, so that DDP / compile / autocast wrap encode *and* decode.

    Stage 1 decodes a posterior sample; with ``freeze_encoder`` (stage 2) the encoder runs without gradients.
    """

    _no_split_modules = AutoencoderViTok._no_split_modules  # FSDP auto-wrap reads it from the prepared module

    def __init__(self, autoencoder: AutoencoderViTok, freeze_encoder: bool):
        super().__init__()
        self.autoencoder = autoencoder
        self.freeze_encoder = freeze_encoder

    def forward(
        self,
        pixel_values: torch.Tensor,
        generator: torch.Generator | None = None,
        sample_posterior: bool = True,
    ):
        """(B, 3, H, W) or (B, 3, T, H, W) pixels -> (reconstruction of the same shape, posterior).

        ``sample_posterior=False`` decodes the posterior mean (the evaluation's reconstruction): evaluating through
        this forward lets FSDP2 gather the parameters outside the blocks, which ``encode`` / ``decode`` would not.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            posterior = self.autoencoder.encode(pixel_values).latent_dist
            latents = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.autoencoder.decode(latents).sample, posterior


def save_reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor, path: Path) -> None:
    """PNG with originals on the top row and reconstructions below (videos: one row pair per clip, frames across)."""

    def to_rows(pixels: torch.Tensor) -> list[torch.Tensor]:
        pixels = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
        if pixels.ndim == 5:  # (B, 3, T, H, W): one row of frames per clip
            return [torch.cat(list(clip.unbind(1)), dim=2) for clip in pixels]
        return [torch.cat(list(pixels), dim=2)]

    rows = []
    for original_row, reconstruction_row in zip(to_rows(originals), to_rows(reconstructions)):
        rows += [original_row, reconstruction_row]
    grid = torch.cat(rows, dim=1).permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(grid)).save(path)


@torch.no_grad()
def evaluate_reconstruction(
    model: AutoencoderTrainingForward,
    dataloader: torch.utils.data.DataLoader,
    accelerator: Accelerator,
    frechet_metrics: dict[str, FrechetDistance],
    grid_path: Path,
    num_grid_samples: int,
    ema: ShardedEMAModel | None = None,
) -> dict[str, float]:
    """PSNR, SSIM (and rFID / rFVD) of posterior-mean reconstructions over ``dataloader``; saves a PNG grid.

    Call it on every process, with the unwrapped prepared module (``accelerator.unwrap_model(training_forward)``):
    the reconstructions go through its forward, so FSDP2 gathers every parameter, and every process reconstructs
    its share of ``dataloader`` (prepared). The main process gathers them, computes the metrics and writes
    ``grid_path`` (``num_grid_samples`` originals over their reconstructions); the others return ``{}``.

    Args:
        ema: the EMA of ``model.autoencoder.decoder`` (stage 2): its weights are evaluated, then the trained
            weights are put back.
    """
    decoder_parameters = list(model.autoencoder.decoder.parameters())
    if ema is not None:
        ema.store(decoder_parameters)
        ema.copy_to(decoder_parameters)
    was_training = model.training
    model.eval()
    metrics = [PeakSignalNoiseRatio(), StructuralSimilarity(), *frechet_metrics.values()]
    grid_samples: tuple[torch.Tensor, torch.Tensor] | None = None
    with sharded_inference(model):
        for batch in dataloader:
            pixels = batch["pixel_values"]
            with accelerator.autocast():
                reconstructions, _ = model(pixels, sample_posterior=False)
            pixels, reconstructions = accelerator.gather_for_metrics((pixels, reconstructions.float()))
            if accelerator.is_main_process:
                for metric in metrics:
                    metric.add_batch(predictions=reconstructions, references=pixels)
                if grid_samples is None:
                    grid_samples = (pixels[:num_grid_samples], reconstructions[:num_grid_samples])
    model.train(was_training)
    if ema is not None:
        ema.restore(decoder_parameters)
    results: dict[str, float] = {}
    if accelerator.is_main_process:
        for metric in metrics:
            results.update(metric.compute())
        save_reconstruction_grid(*grid_samples, grid_path)
    return results


__all__ = ["AutoencoderTrainingForward", "evaluate_reconstruction", "save_reconstruction_grid"]
