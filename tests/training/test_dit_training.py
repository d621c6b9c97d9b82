"""Latent cache, DiT losses (DDPM, flow matching) and ``training/train_dit.py`` (loss goes down, saved pipeline,
exact resume, videos)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from diffusers import (
    DDPMScheduler,
    DiTPipeline,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from launch import load_training_script
from no_hf_compact import NO_HF_COMPACT, run_without_hf_compact
from PIL import Image as PILImage
from safetensors.torch import load_file
from tiny_models import tiny_vitok

import hf_compact  # noqa: F401  (registers the pipelines)
from hf_compact import AutoencoderViTok, DiTImagePipeline, DiTVideoPipeline
from hf_compact.data.latent_cache import autoencoder_fingerprint, build_latent_cache, pixels_from_example
from hf_compact.data.moving_digits import make_moving_image_videos
from hf_compact.losses.diffusion import (
    ddpm_loss,
    flow_matching_loss,
    learned_range_log_variance,
    resolution_shift,
    sample_flow_sigmas,
    shift_sigmas,
)
from hf_compact.vitok.latent_statistics import compute_latent_std

train_dit = load_training_script("train_dit")

NUM_CLASSES = 3


def striped_images(count_per_class: int = 8) -> Dataset:
    """Class k: a bright horizontal band at rows 5k..5k+4 with a random brightness."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for label in range(NUM_CLASSES):
        for _ in range(count_per_class):
            pixels = np.zeros((16, 16, 3), np.uint8)
            pixels[5 * label : 5 * label + 5] = rng.integers(150, 255)
            images.append(PILImage.fromarray(pixels))
            labels.append(label)
    features = Features({"image": Image(), "label": ClassLabel(names=["top", "middle", "bottom"])})
    return Dataset.from_dict({"image": images, "label": labels}, features=features)


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vae")
    tiny_vitok().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """An imagefolder dataset (what ``--train_dir`` reads)."""
    root = tmp_path_factory.mktemp("images")
    dataset = striped_images()
    for index, row in enumerate(dataset):
        folder = root / "train" / dataset.features["label"].int2str(row["label"])
        folder.mkdir(parents=True, exist_ok=True)
        row["image"].save(folder / f"{index}.png")
    return root


def run_training(vae_dir: Path, image_dir: Path, output_dir: Path, *extra: str) -> dict:
    return train_dit.main(
        [
            "--vae_name_or_path",
            str(vae_dir),
            "--train_dir",
            str(image_dir),
            "--output_dir",
            str(output_dir),
            "--latent_cache_dir",
            str(output_dir.parent / "latent_cache"),
            "--num_layers",
            "1",
            "--num_attention_heads",
            "2",
            "--attention_head_dim",
            "8",
            "--per_device_train_batch_size",
            "8",
            "--learning_rate",
            "3e-3",
            "--seed",
            "0",
            *extra,
        ]
    )


# ------------------------------------------------------------------------------------------------ latent cache


def test_latent_cache_is_reused_and_invalidated_by_the_autoencoder(tmp_path, monkeypatch):
    dataset, vae = striped_images(2), tiny_vitok()
    encode_calls = []
    original_encode = AutoencoderViTok.encode
    monkeypatch.setattr(
        AutoencoderViTok,
        "encode",
        lambda self, x, **kw: encode_calls.append(len(x)) or original_encode(self, x, **kw),
    )
    cache = build_latent_cache(vae, dataset, tmp_path, batch_size=4, shard_size=4, show_progress=False)
    assert sum(encode_calls) == 6 and len(cache) == 6 and cache.latent_shape == (4, 4, 4)
    assert len(cache.metadata["shards"]) == 2 and cache.metadata["class_names"] == ["top", "middle", "bottom"]
    with torch.no_grad():
        expected = vae.encode(torch.stack([pixels_from_example(image) for image in dataset["image"]])).latent_dist
    torch.testing.assert_close(torch.stack([item["moments"] for item in cache]), expected.parameters)
    # The std of posterior samples, what the DiT trains on: Var(z) = Var(mean) + E[var] (law of total variance).
    samples_std = (expected.mean.var() + expected.var.mean()).sqrt().item()
    assert cache.latent_std() == pytest.approx(samples_std, rel=1e-5)
    assert cache.latent_std() > expected.mean.std().item() * 1.001, "the posterior variance must count"
    drawn = torch.stack([expected.sample(generator=torch.Generator().manual_seed(seed)) for seed in range(400)])
    assert cache.latent_std() == pytest.approx(drawn.std().item(), rel=0.02)
    batches = torch.stack([pixels_from_example(image) for image in dataset["image"]]).split(4)
    assert compute_latent_std(vae, batches, show_progress=False) == pytest.approx(cache.latent_std(), rel=1e-6)
    assert cache.labels.tolist() == dataset["label"]

    encode_calls.clear()
    again = build_latent_cache(tiny_vitok(), dataset, tmp_path, show_progress=False)  # same config and weights
    assert encode_calls == [] and again.path == cache.path

    with torch.no_grad():
        next(vae.decoder.parameters()).add_(1.0)  # only the decoder changes: still a different autoencoder
    assert autoencoder_fingerprint(vae) != autoencoder_fingerprint(tiny_vitok())
    changed = build_latent_cache(vae, dataset, tmp_path, show_progress=False)
    assert sum(encode_calls) == 6 and changed.path != cache.path
    other_data = build_latent_cache(tiny_vitok(), dataset.select(range(3)), tmp_path, show_progress=False)
    assert other_data.path not in (cache.path, changed.path) and len(other_data) == 3


def test_latent_cache_of_videos_and_bad_pixels(tmp_path):
    images = striped_images(1)
    moving_clips = make_moving_image_videos(images, num_frames=3, image_size=24)
    assert moving_clips.features["video"].dtype == "uint8" and moving_clips.features["label"].names[0] == "top"
    moving = moving_clips.with_format("numpy")[:]["video"]
    assert moving.shape == (3, 3, 24, 24, 3)
    sprite_sums = [np.asarray(image).astype(int).sum() for image in images["image"]]
    assert (moving.astype(int).sum(axis=(2, 3, 4)) == np.array(sprite_sums)[:, None]).all()  # whole sprite in view
    assert all((clip[0] != clip[-1]).any() for clip in moving)  # and it moves

    clips = make_moving_image_videos(images, num_frames=2, image_size=16)
    cache = build_latent_cache(tiny_vitok(tubelet_size=2), clips, tmp_path, pixel_column="video", show_progress=False)
    assert cache.is_video and cache.latent_shape == (4, 1, 4, 4)
    with pytest.raises(ValueError, match="dataset: expected a column 'pixels'"):
        build_latent_cache(tiny_vitok(), clips, tmp_path, pixel_column="pixels")
    with pytest.raises(ValueError, match=r"pixels: expected an RGB image.*got float64 \(4, 4, 3\)"):
        pixels_from_example(np.zeros((4, 4, 3)))


# -------------------------------------------------------------------------------------------------- the loss


def test_learned_range_variance_matches_ddpm_scheduler():
    scheduler = DDPMScheduler(variance_type="learned_range")
    variance_output = torch.rand(1, 2, 3, 3) * 2 - 1
    for step in (1, 10, 500, 999):
        ours = learned_range_log_variance(scheduler, variance_output, torch.tensor([step]))
        torch.testing.assert_close(ours, scheduler._get_variance(step, variance_output), rtol=1e-3, atol=1e-3)


def test_diffusion_loss_terms():
    scheduler = DDPMScheduler(variance_type="learned_range")
    latents = torch.randn(4, 2, 3, 3)
    noise, timesteps = torch.randn_like(latents), torch.tensor([3, 50, 400, 900])
    noisy = scheduler.add_noise(latents, noise, timesteps)
    # Exact noise and the posterior variance (v = -1): MSE and every KL term vanish.
    perfect = ddpm_loss(scheduler, torch.cat([noise, -torch.ones_like(noise)], 1), latents, noise, noisy, timesteps)
    assert perfect["mse"] == 0 and perfect["vlb"].abs() < 1e-5
    wrong_variance = ddpm_loss(
        scheduler, torch.cat([noise, torch.ones_like(noise)], 1), latents, noise, noisy, timesteps
    )
    assert wrong_variance["vlb"] > 1e-3 and wrong_variance["loss"] == wrong_variance["vlb"]
    fixed = ddpm_loss(scheduler, noise + 1, latents, noise, noisy, timesteps)  # c channels: MSE only
    assert math.isclose(fixed["loss"].item(), 1.0, rel_tol=1e-6) and fixed["vlb"] == 0
    with pytest.raises(ValueError, match="model_output: expected 2 or 4 channels"):
        ddpm_loss(scheduler, torch.randn(4, 3, 3, 3), latents, noise, noisy, timesteps)


def test_min_snr_weighting_caps_the_weight_of_nearly_clean_steps():
    scheduler = DDPMScheduler(variance_type="learned_range")
    latents = torch.randn(4, 2, 3, 3)
    noise, timesteps = torch.randn_like(latents), torch.tensor([3, 50, 400, 900])
    noisy = scheduler.add_noise(latents, noise, timesteps)
    errors = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1, 1)  # per-sample epsilon error, squared: 1, 4, 9, 16
    weighted = ddpm_loss(scheduler, noise + errors, latents, noise, noisy, timesteps, snr_gamma=5.0)
    alphas_cumprod = scheduler.alphas_cumprod[timesteps].double()
    snr = alphas_cumprod / (1 - alphas_cumprod)
    assert snr[0] > 5 > snr[3], "the steps straddle gamma"
    expected = (errors.flatten().double() ** 2 * snr.clamp(max=5.0) / snr).mean()
    assert math.isclose(weighted["mse"].item(), expected.item(), rel_tol=1e-5)
    unweighted = ddpm_loss(scheduler, noise + errors, latents, noise, noisy, timesteps)
    assert math.isclose(unweighted["mse"].item(), 7.5, rel_tol=1e-6)
    for gamma in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="snr_gamma: expected a positive number or None"):
            ddpm_loss(scheduler, noise, latents, noise, noisy, timesteps, snr_gamma=gamma)


def test_flow_matching_loss_is_the_velocity_error_of_the_first_channels():
    latents, noise = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    velocity = noise - latents
    assert flow_matching_loss(velocity, latents, noise)["loss"] == 0
    assert math.isclose(flow_matching_loss(velocity + 2, latents, noise)["loss"].item(), 4.0, rel_tol=1e-6)
    learned_sigma = torch.cat([velocity, torch.randn_like(velocity)], 1)  # a DDPM-shaped output: variance ignored
    assert flow_matching_loss(learned_sigma, latents, noise)["loss"] == 0
    with pytest.raises(ValueError, match="model_output: expected 2 or 4 channels"):
        flow_matching_loss(torch.randn(4, 3, 3, 3), latents, noise)


def test_flow_sigmas_are_logit_normal_and_shifted_as_the_saved_scheduler_samples():
    unshifted = sample_flow_sigmas(20000, generator=torch.Generator().manual_seed(0))
    logits = torch.logit(unshifted.double())
    assert abs(logits.mean().item()) < 0.03 and abs(logits.std().item() - 1) < 0.03  # SD3's lognorm(0, 1)
    shifted = sample_flow_sigmas(20000, shift=3.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(shifted, shift_sigmas(unshifted, 3.0))
    assert shifted.median() > unshifted.median()  # a shift above 1 trains on noisier inputs
    # The shift is the one FlowMatchEulerDiscreteScheduler(shift=...) applies to its sigmas.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    plain = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    torch.testing.assert_close(scheduler.sigmas, shift_sigmas(plain.sigmas, 3.0))
    with pytest.raises(ValueError, match="shift: expected a positive number"):
        sample_flow_sigmas(2, shift=0.0)


def test_resolution_shift_follows_sd3_above_sits_latent_and_never_shifts_down():
    assert resolution_shift((4, 32, 32)) == 1.0  # SiT's ImageNet-256 SD-VAE latent, trained unshifted
    assert resolution_shift((16, 64, 64)) == 4.0  # 16x the values: sqrt(16)
    assert resolution_shift((4, 8, 8)) == 1.0  # the demo's digit latents: sqrt(1/16) would be 0.25
    with pytest.raises(ValueError, match="expected positive sizes"):
        resolution_shift((0, 8, 8))


# ----------------------------------------------------------------------------------------------- train_dit.py


def test_train_dit_flow_matching_learns_and_saves_a_loadable_pipeline(vae_dir, image_dir, tmp_path):
    results = run_training(vae_dir, image_dir, tmp_path / "run", "--max_train_steps", "40")
    # The velocity loss keeps an irreducible part (the noise is unknown at high sigma): it falls less than DDPM's.
    assert results["train_steps"] == 40 and results["final_loss"] < 0.9 * results["initial_loss"]
    assert results["objective"] == "flow_matching" and results["flow_shift"] == 1.0
    assert not (tmp_path / "run" / "samples").exists(), "no --sample_steps: no sample grids"

    pipeline = DiTImagePipeline.from_pretrained(tmp_path / "run")
    assert type(pipeline) is DiTImagePipeline and pipeline.id2label == {0: "bottom", 1: "middle", 2: "top"}
    assert pipeline.transformer.config.out_channels == 4, "flow matching: no variance channels"
    scheduler = pipeline.scheduler.config
    assert type(pipeline.scheduler) is UniPCMultistepScheduler and scheduler.prediction_type == "flow_prediction"
    assert scheduler.use_flow_sigmas and scheduler.flow_shift == 1.0
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline([0, 2], guidance_scale=2.0, num_inference_steps=2, output_type="np").images
    assert images.shape == (2, 16, 16, 3) and np.isfinite(images).all()


PLAIN_DIFFUSERS_SAMPLES = NO_HF_COMPACT + textwrap.dedent(
    r"""
    import torch
    from diffusers import DiffusionPipeline
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    pipeline = DiffusionPipeline.from_pretrained("run", trust_remote_code=True)
    generator = torch.Generator().manual_seed(0)
    images = pipeline([0, 2], guidance_scale=2.0, num_inference_steps=2, generator=generator, output_type="pt").images
    save_file({"images": images.contiguous()}, "images.safetensors")
    print(json.dumps({"pipeline": type(pipeline).__module__, "vae": type(pipeline.vae).__module__}))
    """
)


def test_train_dit_folder_loads_in_plain_diffusers_with_the_same_samples(vae_dir, image_dir, tmp_path):
    """The saved folder carries its code: a process without hf-compact loads it with ``trust_remote_code=True`` and
    samples exactly what ``DiTImagePipeline.from_pretrained`` samples."""
    run_training(vae_dir, image_dir, tmp_path / "run", "--max_train_steps", "2")
    pipeline = DiTImagePipeline.from_pretrained(tmp_path / "run")
    generator, threads = torch.Generator().manual_seed(0), torch.get_num_threads()
    torch.set_num_threads(1)  # as in the other process: the same bits
    try:
        expected = pipeline([0, 2], guidance_scale=2.0, num_inference_steps=2, generator=generator, output_type="pt")
    finally:
        torch.set_num_threads(threads)
    modules = run_without_hf_compact(PLAIN_DIFFUSERS_SAMPLES, tmp_path)
    assert modules == {
        "pipeline": "diffusers_modules.local.pipeline_dit",
        "vae": "diffusers_modules.local.autoencoder_vitok",
    }
    torch.testing.assert_close(load_file(tmp_path / "images.safetensors")["images"], expected.images, rtol=0, atol=0)


def test_train_dit_ddpm_learns_with_a_learned_variance_and_writes_sample_grids(vae_dir, image_dir, tmp_path):
    results = run_training(
        vae_dir, image_dir, tmp_path / "run", "--objective", "ddpm", "--max_train_steps", "40",
        "--sample_steps", "30", "--samples_per_class", "2", "--num_inference_steps", "2",
    )  # fmt: skip
    assert results["train_steps"] == 40 and results["final_loss"] < 0.7 * results["initial_loss"]
    assert results["objective"] == "ddpm" and results["num_inference_steps"] == 2
    assert sorted(path.name for path in (tmp_path / "run" / "samples").iterdir()) == ["final.png", "step-30.png"]
    pipeline = DiTImagePipeline.from_pretrained(tmp_path / "run")
    assert pipeline.transformer.config.out_channels == 8  # learned sigma
    # Saved with DPM-Solver++ on the epsilon half, so diffusers' stock DiTPipeline samples the folder too (its
    # guidance assumes 1000 classes, hence guidance_scale=1).
    assert type(pipeline.scheduler) is DPMSolverMultistepScheduler and pipeline.scheduler.config.variance_type is None
    stock = DiTPipeline(transformer=pipeline.transformer, vae=pipeline.vae, scheduler=pipeline.scheduler)
    images = stock(class_labels=[0, 1], guidance_scale=1.0, num_inference_steps=2, output_type="np").images
    assert images.shape == (2, 16, 16, 3) and np.isfinite(images).all()


def test_train_dit_flow_matching_samplers_are_saved_with_the_shift(vae_dir, image_dir, tmp_path):
    run_training(vae_dir, image_dir, tmp_path / "run", "--max_train_steps", "1", "--sampler", "euler",
                 "--flow_shift", "2.5")  # fmt: skip
    scheduler = DiTImagePipeline.from_pretrained(tmp_path / "run").scheduler
    assert type(scheduler) is FlowMatchEulerDiscreteScheduler and scheduler.config.shift == 2.5


def test_train_dit_resume_matches_a_straight_run(vae_dir, image_dir, tmp_path):
    straight = tmp_path / "straight"
    run_training(vae_dir, image_dir, straight, "--max_train_steps", "6")
    resumed = tmp_path / "resumed"
    run_training(vae_dir, image_dir, resumed, "--max_train_steps", "6", "--checkpointing_steps", "4")
    checkpoint = str(resumed / "checkpoint-4")  # the run again from its step 4: its steps 5 and 6 are redone
    run_training(vae_dir, image_dir, resumed, "--max_train_steps", "6", "--checkpointing_steps", "4",
                 "--resume_from_checkpoint", checkpoint)  # fmt: skip
    expected = load_file(straight / "transformer" / "diffusion_pytorch_model.safetensors")
    actual = load_file(resumed / "transformer" / "diffusion_pytorch_model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_train_dit_on_two_processes_keeps_replicas_equal(vae_dir, image_dir, tmp_path):
    """``torchrun --nproc_per_node 2``: gloo on CPU, gradients all-reduced, replicas identical at the end."""
    repository = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repository), "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        str(repository / "training" / "train_dit.py"),
        "--vae_name_or_path",
        str(vae_dir),
        "--train_dir",
        str(image_dir),
        "--output_dir",
        str(tmp_path / "run"),
        "--latent_cache_dir",
        str(tmp_path / "cache"),
        "--num_layers",
        "1",
        "--num_attention_heads",
        "2",
        "--attention_head_dim",
        "8",
        "--per_device_train_batch_size",
        "4",
        "--max_train_steps",
        "3",
        "--learning_rate",
        "3e-3",
    ]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "all_results.json").read_text())
    assert results["num_processes"] == 2 and results["train_steps"] == 3
    first, second = results["parameter_sums_per_process"]
    assert first == second


def test_train_dit_on_video_latents(tmp_path):
    clips = make_moving_image_videos(striped_images(4), num_frames=2, image_size=16)
    (tmp_path / "vae").mkdir()
    tiny_vitok(tubelet_size=2).save_pretrained(tmp_path / "vae")
    DatasetDict(train=clips).save_to_disk(tmp_path / "clip_splits")
    results = train_dit.main(
        [
            "--vae_name_or_path",
            str(tmp_path / "vae"),
            "--dataset_name",
            str(tmp_path / "clip_splits"),
            "--output_dir",
            str(tmp_path / "run"),
            "--latent_cache_dir",
            str(tmp_path / "cache"),
            "--num_layers",
            "1",
            "--num_attention_heads",
            "2",
            "--attention_head_dim",
            "8",
            "--per_device_train_batch_size",
            "4",
            "--max_train_steps",
            "3",
        ]
    )
    assert results["train_steps"] == 3
    pipeline = DiTVideoPipeline.from_pretrained(tmp_path / "run")
    assert type(pipeline) is DiTVideoPipeline
    assert pipeline.transformer.config.sample_frames == 1 and pipeline.transformer.config.in_channels == 4
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline([1], num_inference_steps=1, output_type="np").frames.shape == (1, 2, 16, 16, 3)


def test_train_dit_rejects_bad_arguments(vae_dir, image_dir, tmp_path):
    with pytest.raises(ValueError, match="--label_dropout: expected a probability"):
        run_training(vae_dir, image_dir, tmp_path / "a", "--label_dropout", "1.5")
    with pytest.raises(ValueError, match="--snr_gamma: only for --objective ddpm"):
        run_training(vae_dir, image_dir, tmp_path / "c", "--snr_gamma", "5")
    with pytest.raises(ValueError, match="--learn_sigma: only for --objective ddpm"):
        run_training(vae_dir, image_dir, tmp_path / "d", "--learn_sigma")
    with pytest.raises(ValueError, match="--flow_shift: expected a positive number"):
        run_training(vae_dir, image_dir, tmp_path / "e", "--flow_shift", "0")
    with pytest.raises(ValueError, match="--sample_steps: expected a positive number"):
        run_training(vae_dir, image_dir, tmp_path / "f", "--sample_steps", "0")
    with pytest.raises(ValueError, match="--video: expected 5-D video latents"):
        run_training(vae_dir, image_dir, tmp_path / "b", "--video", "--max_train_steps", "1")


# ------------------------------------------------------------------------------------------- run engine (issue 13)

from run_engine_checks import (  # noqa: E402
    TOKEN,
    assert_token_nowhere,
    capture_hub_and_trackers,
    run_killed_after_checkpoint,
)


def test_train_dit_hub_token_reaches_no_file_upload_tracker_or_log(
    vae_dir, image_dir, tmp_path, monkeypatch, caplog, capfd
):
    import logging

    caplog.set_level(logging.DEBUG)
    captured = capture_hub_and_trackers(monkeypatch)
    run_training(vae_dir, image_dir, tmp_path / "run", "--max_train_steps", "1", "--with_tracking", "--push_to_hub",
                 "--hub_model_id", "someone/dit", "--hub_token", TOKEN)  # fmt: skip
    out, err = capfd.readouterr()
    assert_token_nowhere(captured, tmp_path / "run", caplog.text + out + err)
    assert "transformer/diffusion_pytorch_model.safetensors" in captured["files"]


def test_train_dit_exact_resume_inside_a_later_epoch_with_uneven_accumulation(
    vae_dir, image_dir, tmp_path, monkeypatch
):
    """3 batches per epoch, accumulation 2: 2 updates per epoch (2 batches, then 1). Killed after checkpoint-3
    (epoch 1, one update into it), the resumed run ends with the straight run's EMA weights and EMA state."""
    extra = ["--gradient_accumulation_steps", "2", "--max_train_steps", "5", "--checkpointing_steps", "3",
             "--ema_decay", "0.5"]  # fmt: skip
    run_training(vae_dir, image_dir, tmp_path / "straight", *extra)
    resumed = tmp_path / "resumed"
    run_killed_after_checkpoint(lambda argv: run_training(vae_dir, image_dir, resumed, *argv), extra, 3, monkeypatch)
    run_training(vae_dir, image_dir, resumed, *extra, "--resume_from_checkpoint", "latest")
    for name in ("transformer/diffusion_pytorch_model.safetensors", "checkpoint-5/ema.safetensors",
                 "checkpoint-5/model.safetensors"):  # fmt: skip
        expected, actual = load_file(tmp_path / "straight" / name), load_file(resumed / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
