"""Demo part 3: class-conditional generation on the demo ViTok's latents (CPU, no downloads, fixed step budgets).

Images: a small DiT (``DiTTransformer2DModel``, patch 2 on the 8x8 latent grid) is trained for a fixed number of
steps on the latents of the demo's ViTok (``train_dit.py``). ``DiTImagePipeline`` samples with DPM-Solver++
(:func:`hf_compact.dit.samplers.fast_scheduler`, 25 steps) over a small guidance sweep, and once with DiT's
learned-variance DDPM over 250 steps (the reference). The demo's CCT judges the samples:

* ``class agreement``: the share classified as their conditioning digit;
* ``Frechet CCT distance``: the Fréchet distance between CCT features (the pooled sequence, before the classifier)
  of the samples and of held-out real digits, next to the same distance between two halves of real digits (no
  Inception weights offline, so the demo's own classifier is the feature network);
* ``within-class spread``: the mean pairwise feature distance of the samples of one class over that of real digits
  of the class (averaged over classes): near 0 means copies, 1 means as varied as real digits.

The guidance used for the grid is the one with the smallest Frechet CCT distance among those keeping agreement
>= 0.95.

Videos: moving-digit clips train a tiny video ViTok (``train_vitok.py``, tubelets) and a ``DiTTransformer3DModel``
(patch 2 on the latent grid); ``DiTVideoPipeline`` generates clips per class (GIF) and the CCT classifies every
frame, cropped to its digit (:func:`crop_to_digit`): ``video_class_agreement``, next to the same judge on real
held-out clips (``video_real_class_agreement``, the ceiling of the measurement).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import train_dit  # noqa: E402
import train_vitok  # noqa: E402
from diffusers import DiffusionPipeline  # noqa: E402
from PIL import Image  # noqa: E402

import hf_compact  # noqa: E402,F401  (registers the pipelines with diffusers)
from hf_compact.data import load_digits_dataset  # noqa: E402
from hf_compact.data.moving_digits import load_moving_digits_dataset  # noqa: E402
from hf_compact.dit.sample_grid import save_sample_grid  # noqa: E402
from hf_compact.dit.samplers import fast_scheduler  # noqa: E402
from hf_compact.metrics import FeatureStatistics  # noqa: E402
from hf_compact.metrics.frechet import frechet_distance  # noqa: E402

VIDEO_VITOK = {
    "latent_channels": 8, "patch_size": 4, "tubelet_size": 2, "encoder_width": 64, "encoder_depth": 2,
    "encoder_heads": 2, "decoder_width": 64, "decoder_depth": 2, "decoder_heads": 2,
}
DIT_MODEL = ["--preset", "DiT-S", "--num_layers", "4", "--num_attention_heads", "4", "--attention_head_dim", "32",
             "--patch_size", "2"]  # fmt: skip
AGREEMENT_FLOOR = 0.95
NUM_CLASSES = 10


class DigitJudge:
    """The demo's CCT as a judge of generated digits: logits and pooled features of ``(N, 3, H, W)`` in [0, 1]."""

    def __init__(self, classifier_path: Path) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.model = AutoModelForImageClassification.from_pretrained(classifier_path).eval()
        self.processor = AutoImageProcessor.from_pretrained(classifier_path)
        id2label = self.model.config.id2label
        self.classifier_ids = torch.tensor([int(id2label[index]) for index in range(len(id2label))])

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(predicted digit (N,), features (N, D))``."""
        images = list((pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        inputs = self.processor(images=images, return_tensors="pt")
        pooled = self.model.cct(inputs["pixel_values"]).pooler_output
        predicted = self.classifier_ids[self.model.classifier(pooled).argmax(-1)]
        return predicted, pooled.double()


def crop_to_digit(frames: torch.Tensor, threshold: float = 0.3) -> torch.Tensor:
    """Each frame ``(N, 3, H, W)`` in [0, 1] cropped to the square around its bright pixels and resized back.

    The judge is trained on digits that fill the image; a moving digit covers part of its canvas, so the CCT reads
    real moving-digit frames as it reads training digits only after this crop (held-out frames: 0.36 agreement
    uncropped, 0.99 cropped). Frames without a pixel above ``threshold`` are returned unchanged.
    """
    height, width = frames.shape[-2:]
    cropped = []
    for frame in frames:
        bright = frame.mean(0) > threshold
        if not bright.any():
            cropped.append(frame)
            continue
        rows, columns = bright.any(1).nonzero().flatten(), bright.any(0).nonzero().flatten()
        top, bottom, left, right = rows[0].item(), rows[-1].item() + 1, columns[0].item(), columns[-1].item() + 1
        side = max(bottom - top, right - left)
        top, left = round((top + bottom - side) / 2), round((left + right - side) / 2)
        padded = torch.nn.functional.pad(frame, (side, side, side, side))  # a square may reach past the canvas
        square = padded[:, top + side : top + 2 * side, left + side : left + 2 * side]
        cropped.append(torch.nn.functional.interpolate(square[None], size=(height, width), mode="bilinear", antialias=True)[0])
    return torch.stack(cropped)


def frechet(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    statistics = []
    for features in (features_1, features_2):
        accumulated = FeatureStatistics()
        accumulated.update(features)
        statistics.append(accumulated)
    return frechet_distance(statistics[0].mean, statistics[0].covariance, statistics[1].mean, statistics[1].covariance)


def mean_pairwise_distance(features: torch.Tensor) -> float:
    distances = torch.cdist(features, features)
    count = features.shape[0]
    return float(distances.sum() / (count * (count - 1)))


def within_class_spread(features: torch.Tensor, labels: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor) -> float:
    """Mean over classes of (pairwise distance among samples) / (pairwise distance among real digits)."""
    ratios = [
        mean_pairwise_distance(features[labels == digit]) / mean_pairwise_distance(real[real_labels == digit])
        for digit in range(NUM_CLASSES)
    ]
    return float(np.mean(ratios))


def real_digit_features(judge: DigitJudge) -> tuple[torch.Tensor, torch.Tensor]:
    """CCT features and labels of the held-out digits (32 px, the split the CCT and ViTok never trained on)."""
    test_split = load_digits_dataset(image_size=32)["test"]
    pixels = torch.stack([torch.from_numpy(np.array(image.convert("RGB"))) for image in test_split["image"]])
    _, features = judge(pixels.permute(0, 3, 1, 2).float() / 255)
    return features, torch.tensor(test_split["label"])


def sample(pipeline, labels: list[int], guidance_scale: float, num_inference_steps: int, batch_size: int = 100):
    """``"pt"`` samples in [0, 1] for ``labels`` (fixed seed), in batches."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for start in range(0, len(labels), batch_size):
        output = pipeline(
            labels[start : start + batch_size], guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps, generator=generator, output_type="pt",
        )
        batches.append(output.frames if hasattr(output, "frames") else output.images)
    return torch.cat(batches)


def judge_images(judge, images: torch.Tensor, labels: torch.Tensor, real, real_labels, real_half) -> dict:
    predicted, features = judge(images)
    return {
        "class_agreement": round(float((predicted == labels).float().mean()), 4),
        "frechet_cct_distance": round(frechet(features, real_half), 2),
        "within_class_spread": round(within_class_spread(features, labels, real, real_labels), 3),
    }


def choose_guidance(sweep: dict[str, dict]) -> tuple[float, str]:
    eligible = {scale: row for scale, row in sweep.items() if row["class_agreement"] >= AGREEMENT_FLOOR}
    if not eligible:
        best = max(sweep, key=lambda scale: sweep[scale]["class_agreement"])
        return float(best), f"no scale reached agreement {AGREEMENT_FLOOR}; {best} has the highest agreement"
    best = min(eligible, key=lambda scale: eligible[scale]["frechet_cct_distance"])
    return float(best), (
        f"smallest Frechet CCT distance ({eligible[best]['frechet_cct_distance']}) among the scales with agreement "
        f">= {AGREEMENT_FLOOR}"
    )


def write_clips_as_frame_folders(num_frames: int, digit_size: int, root: Path) -> Path:
    """Moving-digit training clips as ``root/clip-XXXXX/frame-Y.png`` (the layout ``train_vitok.py`` reads)."""
    clips = load_moving_digits_dataset(num_frames=num_frames, digit_size=digit_size)["train"]
    videos = clips.with_format("numpy")[:]["video"].astype(np.uint8)
    for index, video in enumerate(videos):
        folder = root / f"clip-{index:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for frame_index, frame in enumerate(video):
            Image.fromarray(frame).save(folder / f"frame-{frame_index}.png")
    return root


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - started, 1)


def run(
    output_dir: Path,
    vitok_path: Path,
    classifier_path: Path,
    dit_steps: int = 3000,
    samples_per_class: int = 18,
    guidance_scales: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0),
    fast_steps: int = 25,
    reference_steps: int = 250,
    video_vitok_steps: int = 400,
    video_dit_steps: int = 3000,
    video_samples_per_class: int = 3,
    video_guidance_scale: float = 6.0,
    num_frames: int = 4,
    digit_size: int = 20,
) -> dict:
    """Train and evaluate both generation paths; returns the numbers for ``results.json``.

    Args:
        output_dir: demo folder (this part writes ``dit/``, ``dit_video/``, ``vitok_video/`` and grids there).
        vitok_path: the demo's image ViTok (``save_pretrained`` folder, trained on the 32 px digits).
        classifier_path: the demo's CCT (``CCTForImageClassification`` folder with its image processor).
        dit_steps: image DiT training steps.
        samples_per_class: generated images per digit for every measurement.
        guidance_scales: the sweep of the fast sampler.
        fast_steps / reference_steps: DPM-Solver++ steps / DDPM (learned variance) steps.
        video_vitok_steps / video_dit_steps: training steps of the video ViTok / video DiT.
        video_samples_per_class / video_guidance_scale: generated clips per digit and their guidance.
        num_frames / digit_size: moving-digit clips (frames; digit side on the 32 px canvas).
    """
    output_dir = Path(output_dir)
    common_dit = [
        "--lr_scheduler", "constant_with_warmup", "--per_device_train_batch_size", "32", "--ema_decay", "0.999",
        "--latent_scaling", "auto", "--latent_cache_dir", str(output_dir / "latent_cache"), "--mixed_precision", "no",
        "--seed", "0",
    ]  # fmt: skip
    results: dict = {}
    judge = DigitJudge(classifier_path)
    real, real_labels = real_digit_features(judge)
    half = real.shape[0] // 2
    order = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(0))
    real_half_a, real_half_b = real[order[:half]], real[order[half:]]
    results["real_halves_frechet_cct_distance"] = round(frechet(real_half_b, real_half_a), 2)

    # ---- images
    dit_dir = output_dir / "dit"
    image_training, seconds = timed(train_dit.main, [
        "--vae_name_or_path", str(vitok_path), "--dataset_name", "digits", "--output_dir", str(dit_dir),
        "--overwrite_output_dir", *DIT_MODEL, "--learning_rate", "2e-3", "--lr_warmup_steps", "100",
        "--max_train_steps", str(dit_steps), *common_dit,
    ])  # fmt: skip
    results.update({
        "dit_parameters": image_training["num_parameters"], "dit_train_steps": image_training["step"],
        "dit_train_seconds": seconds, "dit_initial_loss": round(image_training["initial_loss"], 4),
        "dit_final_loss": round(image_training["final_loss"], 4),
    })  # fmt: skip
    pipeline = DiffusionPipeline.from_pretrained(dit_dir)
    pipeline.set_progress_bar_config(disable=True)
    reference_scheduler = pipeline.scheduler
    labels = [digit for digit in range(NUM_CLASSES) for _ in range(samples_per_class)]
    label_tensor = torch.tensor(labels)

    pipeline.scheduler = fast_scheduler(reference_scheduler.config)
    sweep, samples_by_scale = {}, {}
    started = time.perf_counter()
    for scale in guidance_scales:
        samples_by_scale[scale] = sample(pipeline, labels, scale, fast_steps)
        sweep[str(scale)] = judge_images(judge, samples_by_scale[scale], label_tensor, real, real_labels, real_half_a)
        print(f"[dit] DPM-Solver++ {fast_steps} steps, guidance {scale}: {sweep[str(scale)]}")
    results["dit_fast_sampling_seconds"] = round(time.perf_counter() - started, 1)
    guidance, reason = choose_guidance(sweep)

    pipeline.scheduler = reference_scheduler
    reference_samples, results["dit_reference_sampling_seconds"] = timed(sample, pipeline, labels, guidance, reference_steps)
    reference = judge_images(judge, reference_samples, label_tensor, real, real_labels, real_half_a)
    print(f"[dit] DDPM {reference_steps} steps, guidance {guidance}: {reference}")
    fast = sweep[str(guidance)]
    use_fast = fast["class_agreement"] >= reference["class_agreement"] - 0.03
    chosen = fast if use_fast else reference
    shown = samples_by_scale[guidance] if use_fast else reference_samples
    grid_samples = shown.reshape(NUM_CLASSES, samples_per_class, *shown.shape[1:])[:, :10].flatten(0, 1)
    image_grid = save_sample_grid(grid_samples.permute(0, 2, 3, 1).numpy(), NUM_CLASSES, output_dir / "dit_samples")
    results.update({
        "dit_sampler": f"DPM-Solver++ {fast_steps} steps" if use_fast else f"DDPM {reference_steps} steps",
        "dit_guidance_scale": guidance, "dit_guidance_reason": reason,
        "dit_class_agreement": chosen["class_agreement"], "dit_frechet_cct_distance": chosen["frechet_cct_distance"],
        "dit_within_class_spread": chosen["within_class_spread"],
        "dit_fast_class_agreement": fast["class_agreement"], "dit_ddpm250_class_agreement": reference["class_agreement"],
        "dit_ddpm250": reference, "dit_guidance_sweep": sweep, "dit_samples_per_class": samples_per_class,
        "dit_sample_grid": str(image_grid),
    })  # fmt: skip

    # ---- videos
    video_vitok_dir = output_dir / "vitok_video"
    clips_root = write_clips_as_frame_folders(num_frames, digit_size, output_dir / "moving_digits" / "train")
    video_vitok, seconds = timed(train_vitok.main, [
        "--train_dir", str(clips_root), "--num_frames", str(num_frames), "--resolution", "32",
        "--model_overrides", json.dumps(VIDEO_VITOK), "--lpips_weight", "0", "--learning_rate", "2e-3",
        "--lr_warmup_ratio", "0.03", "--max_train_steps", str(video_vitok_steps), "--per_device_train_batch_size", "16",
        "--max_eval_samples", "64", "--mixed_precision", "no", "--seed", "0", "--output_dir", str(video_vitok_dir),
        "--overwrite_output_dir",
    ])  # fmt: skip
    results.update({
        "video_vitok_psnr": round(video_vitok["psnr"], 2), "video_vitok_train_steps": video_vitok["step"],
        "video_vitok_train_seconds": seconds,
    })  # fmt: skip
    video_dit_dir = output_dir / "dit_video"
    video_training, seconds = timed(train_dit.main, [
        "--vae_name_or_path", str(video_vitok_dir), "--dataset_name", "moving_digits", "--num_frames", str(num_frames),
        "--video", "--output_dir", str(video_dit_dir), "--overwrite_output_dir", *DIT_MODEL, "--learning_rate", "2e-3",
        "--lr_warmup_steps", "100", "--max_train_steps", str(video_dit_steps), *common_dit,
    ])  # fmt: skip
    results.update({
        "video_dit_parameters": video_training["num_parameters"], "video_dit_train_steps": video_training["step"],
        "video_dit_train_seconds": seconds, "video_dit_final_loss": round(video_training["final_loss"], 4),
    })  # fmt: skip
    video_pipeline = DiffusionPipeline.from_pretrained(video_dit_dir)
    video_pipeline.set_progress_bar_config(disable=True)
    video_labels = [digit for digit in range(NUM_CLASSES) for _ in range(video_samples_per_class)]
    frame_labels = torch.tensor(video_labels).repeat_interleave(num_frames)
    video_reference_scheduler = video_pipeline.scheduler
    agreements = {}
    started = time.perf_counter()
    for name, scheduler, steps in (
        ("fast", fast_scheduler(video_reference_scheduler.config), fast_steps),
        ("ddpm250", video_reference_scheduler, reference_steps),
    ):
        video_pipeline.scheduler = scheduler
        clips = sample(video_pipeline, video_labels, video_guidance_scale, steps, batch_size=30)  # (B, T, 3, H, W)
        predicted, _ = judge(crop_to_digit(clips.flatten(0, 1)))
        agreements[name] = (round(float((predicted == frame_labels).float().mean()), 4), clips)
    results["video_sampling_seconds"] = round(time.perf_counter() - started, 1)
    real_clips = load_moving_digits_dataset(num_frames=num_frames, digit_size=digit_size)["test"].with_format("torch")[:]
    real_frames = real_clips["video"].flatten(0, 1).permute(0, 3, 1, 2).float() / 255  # (N * T, 3, H, W)
    predicted, _ = judge(crop_to_digit(real_frames))
    real_agreement = (predicted == real_clips["label"].repeat_interleave(num_frames)).float().mean()
    results["video_real_class_agreement"] = round(float(real_agreement), 4)
    use_fast = agreements["fast"][0] >= agreements["ddpm250"][0] - 0.03
    agreement, clips = agreements["fast" if use_fast else "ddpm250"]
    motion = (clips[:, 1:] - clips[:, :-1]).abs().mean()
    video_grid = save_sample_grid(clips.permute(0, 1, 3, 4, 2).numpy(), NUM_CLASSES, output_dir / "dit_video_samples")
    results.update({
        "video_sampler": f"DPM-Solver++ {fast_steps} steps" if use_fast else f"DDPM {reference_steps} steps",
        "video_guidance_scale": video_guidance_scale, "video_class_agreement": agreement,
        "video_fast_class_agreement": agreements["fast"][0], "video_ddpm250_class_agreement": agreements["ddpm250"][0],
        "video_mean_frame_change": round(float(motion), 4), "video_samples": str(video_grid),
    })  # fmt: skip
    return results
