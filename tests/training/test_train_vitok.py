"""ViTok training: data (images, PyAV videos, frame folders), stage 1 and 2 runs, kill-and-resume, 2 processes."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from launch import load_training_script, run_two_processes
from PIL import Image
from safetensors.torch import load_file

from hf_compact.data import ImageReconstructionTransform, VideoArrayDataset, VideoClipDataset, loading
from hf_compact.data.moving_digits import load_moving_digits_dataset
from hf_compact.vitok import AutoencoderViTok

ROOT = Path(__file__).resolve().parents[2]
train_vitok = load_training_script("train_vitok")

TINY_VITOK = {
    "patch_size": 4,
    "latent_channels": 4,
    "encoder_width": 16,
    "encoder_depth": 1,
    "encoder_heads": 1,
    "decoder_width": 16,
    "decoder_depth": 1,
    "decoder_heads": 1,
}
TINY_IMAGE_RUN = [
    "--dataset_name", "digits", "--resolution", "16", "--preset", "S-B/16",
    "--model_overrides", json.dumps(TINY_VITOK), "--lpips_weight", "0",
    "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--max_eval_samples", "16",
    "--learning_rate", "3e-3", "--lr_warmup_ratio", "0", "--mixed_precision", "no", "--seed", "0",
]  # fmt: skip
cached_digits = functools.cache(loading.BUNDLED_DATASETS["digits"])


@pytest.fixture(autouse=True)
def fast_and_offline(monkeypatch):
    """One intra-op thread (OpenMP spinning on a shared 2-core machine is ~100x slower) and digits built once."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setitem(loading.BUNDLED_DATASETS, "digits", cached_digits)
    yield
    torch.set_num_threads(previous)


def write_video(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    """(T, H, W, 3) uint8 frames -> an H.264 file written with PyAV."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def moving_square_frames(num_frames: int, offset: int, height: int = 24, width: int = 32) -> np.ndarray:
    frames = np.full((num_frames, height, width, 3), 40, dtype=np.uint8)
    for index in range(num_frames):
        left = (offset + 2 * index) % (width - 8)
        frames[index, 8:16, left : left + 8] = (230, 120, 30)
    return frames


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for clip in range(4):
        write_video(folder / f"clip{clip}.mp4", moving_square_frames(12, offset=3 * clip))
    return folder


def parameters_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------------- data


def test_image_transform_eval_is_a_centre_crop_and_train_is_seeded():
    pixels = np.random.default_rng(0).integers(0, 256, size=(20, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    centre = ImageReconstructionTransform(20, train=False)(image)
    expected = torch.from_numpy(pixels[:, 10:30]).permute(2, 0, 1).float() / 255 * 2 - 1
    torch.testing.assert_close(centre, expected)
    square = Image.fromarray(pixels[:, :20])  # a 2:1 image admits no 80-100% crop in [3/4, 4/3]: centred fallback
    train = ImageReconstructionTransform(16, train=True)
    first = train(square, torch.Generator().manual_seed(3))
    assert first.shape == (3, 16, 16) and first.min() >= -1 and first.max() <= 1
    torch.testing.assert_close(train(square, torch.Generator().manual_seed(3)), first)
    assert not torch.equal(train(square, torch.Generator().manual_seed(4)), first)


def test_video_clips_from_frame_folders_and_pyav_files(tmp_path, video_folder):
    frames = moving_square_frames(9, offset=0, height=16, width=16)
    (tmp_path / "frames" / "clip").mkdir(parents=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "frames" / "clip" / f"{index:03d}.png")
    evaluation = VideoClipDataset(tmp_path / "frames", num_frames=3, resolution=16, frame_stride=2, train=False)
    clip = evaluation[0]["pixel_values"]
    # 9 frames, span 5 -> centred start 2 -> frames 2, 4, 6 (PNG is lossless: exact values)
    expected = torch.from_numpy(frames[[2, 4, 6]]).permute(3, 0, 1, 2).float() / 255 * 2 - 1
    torch.testing.assert_close(clip, expected)

    dataset = VideoClipDataset(video_folder, num_frames=4, resolution=16, frame_stride=2, train=True, seed=1)
    assert len(dataset) == 4
    item = dataset[1]["pixel_values"]
    assert item.shape == (3, 4, 16, 16) and -1 <= item.min() and item.max() <= 1
    torch.testing.assert_close(dataset[1]["pixel_values"], item)  # same (seed, epoch, index): same clip
    with pytest.raises(ValueError, match="expected at least 13 frames"):
        VideoClipDataset(video_folder, num_frames=7, resolution=16, frame_stride=2)[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found none"):
        VideoClipDataset(tmp_path / "empty", num_frames=2, resolution=8)


def test_video_clips_in_memory_equal_the_same_frames_read_from_files(tmp_path):
    videos = np.stack([moving_square_frames(9, offset=3 * clip, height=16, width=20) for clip in range(3)])
    for clip, frames in enumerate(videos):
        (tmp_path / f"clip{clip}").mkdir()
        for index, frame in enumerate(frames):
            Image.fromarray(frame).save(tmp_path / f"clip{clip}" / f"{index:03d}.png")
    for train in (True, False):
        from_files = VideoClipDataset(tmp_path, num_frames=3, resolution=16, frame_stride=2, train=train, seed=1)
        in_memory = VideoArrayDataset(videos, num_frames=3, resolution=16, frame_stride=2, train=train, seed=1)
        assert len(in_memory) == len(from_files) == 3
        for epoch in (0, 1):  # random starts, crops and flips drawn alike, epoch after epoch
            from_files.set_epoch(epoch)
            in_memory.set_epoch(epoch)
            for index in range(3):
                assert torch.equal(in_memory[index]["pixel_values"], from_files[index]["pixel_values"])
    uneven = VideoArrayDataset([videos[0], videos[1, :5]], num_frames=3, resolution=16, frame_stride=2)
    assert uneven[1]["pixel_values"].shape == (3, 3, 16, 16)

    with pytest.raises(
        ValueError, match=r"videos\[1\]: expected a \(frames, height, width, 3\) uint8 array, got float32"
    ):
        VideoArrayDataset([videos[0], videos[1].astype(np.float32)], num_frames=3, resolution=16)
    with pytest.raises(ValueError, match=r"videos\[0\]: expected a \(frames, height, width, 3\) uint8 array"):
        VideoArrayDataset(videos[0], num_frames=3, resolution=16)  # one video, not a batch of them
    with pytest.raises(ValueError, match=r"videos\[0\]: expected at least 5 frames for 3 frames at stride 2, got 4"):
        VideoArrayDataset([videos[0, :4]], num_frames=3, resolution=16, frame_stride=2)[0]
    with pytest.raises(ValueError, match="videos: expected at least one video, got none"):
        VideoArrayDataset([], num_frames=3, resolution=16)


# ---------------------------------------------------------------------------------------------------- arguments


def test_paper_recipes_parse_and_bad_flags_are_refused():
    configs = sorted((ROOT / "training" / "configs").glob("vitok_*.yaml"))
    assert len(configs) == 10
    for config in configs:
        with pytest.raises(ValueError, match="--lpips_model_name_or_path: expected LPIPS weights"):
            train_vitok.parse_args(["--config", str(config)])
        args = train_vitok.parse_args(["--config", str(config), "--lpips_model_name_or_path", "org/lpips"])
        assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.scale_lr) == (0.9, 0.95, 1e-4, True)
        assert args.mixed_precision == "bf16" and args.gradient_checkpointing
        if args.stage == 2:
            assert (args.gan_weight, args.discriminator_learning_rate, args.ema_decay) == (0.05, 2e-5, 0.9999)
    with pytest.raises(ValueError, match="--model_name_or_path: stage 2"):
        train_vitok.parse_args(
            ["--dataset_name", "digits", "--stage", "2", "--lpips_weight", "0", "--output_dir", "x"]
        )
    with pytest.raises(ValueError, match="--train_dir: expected a folder of videos"):
        train_vitok.parse_args(
            ["--dataset_name", "digits", "--num_frames", "4", "--lpips_weight", "0", "--output_dir", "x"]
        )
    with pytest.raises(
        ValueError, match="--num_frames: --dataset_name moving_digits makes clips, expected >= 2, got 1"
    ):
        train_vitok.parse_args(["--dataset_name", "moving_digits", "--lpips_weight", "0", "--output_dir", "x"])


# ---------------------------------------------------------------------------------------------------- training


class ChannelStatistics(torch.nn.Module):
    """A stand-in for the TorchScript Inception of rFID: per-channel mean and std as features."""

    def forward(self, pixels: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return torch.cat([pixels.mean(dim=(2, 3)), pixels.std(dim=(2, 3))], dim=1)


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory) -> tuple[Path, dict]:
    output_dir = tmp_path_factory.mktemp("stage1")
    feature_network = tmp_path_factory.mktemp("inception") / "features.pt"
    torch.jit.script(ChannelStatistics()).save(str(feature_network))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(loading.BUNDLED_DATASETS, "digits", cached_digits)
        torch.set_num_threads(1)
        results = train_vitok.main(
            [*TINY_IMAGE_RUN, "--max_train_steps", "30", "--charbonnier_weight", "0.5", "--ssim_weight", "0.1",
             "--eval_steps", "15", "--fid_feature_extractor", str(feature_network), "--trust_torchscript_code",
             "--output_dir", str(output_dir)]
        )  # fmt: skip
    return output_dir, results


def test_stage1_on_images_reduces_the_loss_and_saves_a_diffusers_model(stage1_run):
    output_dir, results = stage1_run
    assert results["train_steps"] == 30 and results["num_processes"] == 1
    assert results["train_loss"] < 0.5 * results["first_train_loss"]
    assert set(results) >= {
        "eval_psnr",
        "eval_ssim",
        "eval_rfid",
        "train_mse",
        "train_kl",
        "train_charbonnier",
        "train_ssim",
    }
    assert results["eval_psnr"] > 12 and results["eval_rfid"] > 0
    for grid in ("reconstructions-step15.png", "reconstructions-final.png"):
        assert Image.open(output_dir / grid).size == (8 * 16, 2 * 16)
    autoencoder = AutoencoderViTok.from_pretrained(output_dir)
    assert autoencoder.config.patch_size == 4 and autoencoder.config.sample_size == 16
    saved = json.loads((output_dir / "all_results.json").read_text())
    assert saved["eval_psnr"] == pytest.approx(results["eval_psnr"])


def test_stage1_on_videos_with_lpips_reduces_the_loss(tmp_path, video_folder):
    results = train_vitok.main(
        [
            "--train_dir", str(video_folder), "--num_frames", "4", "--frame_stride", "2", "--resolution", "16",
            "--model_overrides", json.dumps({**TINY_VITOK, "tubelet_size": 2}),
            "--lpips_weight", "0.1", "--lpips_random_init",
            "--per_device_train_batch_size", "2", "--num_train_epochs", "8", "--max_eval_samples", "2",
            "--learning_rate", "3e-3", "--lr_warmup_ratio", "0", "--mixed_precision", "no",
            "--output_dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert results["train_steps"] == 16 and "train_lpips" in results
    assert results["train_loss"] < 0.7 * results["first_train_loss"]
    assert Image.open(tmp_path / "reconstructions-final.png").size == (
        4 * 16,
        2 * 2 * 16,
    )  # 2 clips x 4 frames


def test_moving_digits_train_on_clips_in_memory_and_evaluate_on_held_out_clips(tmp_path):
    flags = [
        "--dataset_name", "moving_digits", "--num_frames", "2", "--digit_size", "12", "--resolution", "16",
        "--model_overrides", json.dumps({**TINY_VITOK, "tubelet_size": 2}), "--lpips_weight", "0",
        "--per_device_train_batch_size", "8", "--max_train_steps", "12", "--max_eval_samples", "4",
        "--learning_rate", "3e-3", "--lr_warmup_ratio", "0", "--mixed_precision", "no", "--output_dir", str(tmp_path),
    ]  # fmt: skip
    train, validation = train_vitok.build_datasets(train_vitok.parse_args(flags))
    clips = load_moving_digits_dataset(num_frames=2, image_size=16, digit_size=12)
    assert len(train) == len(clips["train"]) and len(validation) == 4
    held_out = torch.tensor(clips["test"][0]["video"], dtype=torch.float32).permute(3, 0, 1, 2) / 255 * 2 - 1
    torch.testing.assert_close(validation[0]["pixel_values"], held_out)

    results = train_vitok.main(flags)
    assert results["train_steps"] == 12 and results["train_loss"] < 0.7 * results["first_train_loss"]
    assert Image.open(tmp_path / "reconstructions-final.png").size == (2 * 16, 2 * 4 * 16)  # 4 clips x 2 frames


def stage2_arguments(stage1_dir: Path, output_dir: Path) -> list[str]:
    return [
        *TINY_IMAGE_RUN, "--stage", "2", "--model_name_or_path", str(stage1_dir), "--max_train_steps", "6",
        "--gan_start_step", "1", "--gan_ramp_steps", "2", "--discriminator_base_channels", "2",
        "--discriminator_max_channels", "8", "--discriminator_warmup_steps", "2", "--ema_decay", "0.9",
        "--checkpointing_steps", "2", "--output_dir", str(output_dir),
    ]  # fmt: skip


def test_stage2_freezes_the_encoder_and_resumes_exactly_after_a_crash(stage1_run, tmp_path, monkeypatch):
    stage1_dir, _ = stage1_run
    straight_dir, crashed_dir = tmp_path / "straight", tmp_path / "crashed"
    straight = train_vitok.main(stage2_arguments(stage1_dir, straight_dir))
    assert straight["train_steps"] == 6 and "train_generator_gan" in straight and "train_discriminator" in straight

    stage1 = AutoencoderViTok.from_pretrained(stage1_dir)
    stage2 = AutoencoderViTok.from_pretrained(straight_dir)
    for name, value in parameters_of(stage1.encoder).items():
        torch.testing.assert_close(parameters_of(stage2.encoder)[name], value, rtol=0, atol=0)
    assert any(
        not torch.equal(value, parameters_of(stage1.decoder)[name])
        for name, value in parameters_of(stage2.decoder).items()
    )

    # Kill the run while it writes checkpoint-4: checkpoint-2 must survive and the resumed run must end where
    # the straight run ended (model, EMA, discriminator, both optimizers and schedulers restored).
    real_save_state = Accelerator.save_state

    def crash_on_checkpoint_4(self, output_dir=None, **kwargs):
        if ".checkpoint-4" in str(output_dir):
            raise KeyboardInterrupt("killed while writing checkpoint-4")
        return real_save_state(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", crash_on_checkpoint_4)
    with pytest.raises(KeyboardInterrupt):
        train_vitok.main(stage2_arguments(stage1_dir, crashed_dir))
    monkeypatch.setattr(Accelerator, "save_state", real_save_state)
    assert (crashed_dir / "checkpoint-2" / "training_state.json").is_file()
    assert not (crashed_dir / "checkpoint-4").exists()

    resumed = train_vitok.main([*stage2_arguments(stage1_dir, crashed_dir), "--resume_from_checkpoint", "latest"])
    assert resumed["train_steps"] == 6
    straight_weights = load_file(straight_dir / "diffusion_pytorch_model.safetensors")
    resumed_weights = load_file(crashed_dir / "diffusion_pytorch_model.safetensors")
    for name, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], value, rtol=1e-5, atol=1e-6)
    assert resumed["eval_psnr"] == pytest.approx(straight["eval_psnr"], abs=1e-4)


def test_push_to_hub_uploads_the_final_model_with_its_card(tmp_path, monkeypatch):
    from huggingface_hub import HfApi, RepoUrl

    uploads = []
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kwargs: RepoUrl(f"https://huggingface.co/{repo_id}")
    )
    monkeypatch.setattr(
        HfApi,
        "upload_folder",
        lambda self, **kwargs: uploads.append((kwargs["repo_id"], sorted(os.listdir(kwargs["folder_path"])))),
    )
    train_vitok.main(
        [*TINY_IMAGE_RUN, "--max_train_steps", "1", "--max_eval_samples", "8", "--output_dir", str(tmp_path),
         "--push_to_hub", "--hub_model_id", "someone/vitok-tiny"]
    )  # fmt: skip
    assert uploads[0][0] == "someone/vitok-tiny"
    assert {"README.md", "config.json", "diffusion_pytorch_model.safetensors"} <= set(uploads[0][1])


DISTRIBUTED_DRIVER = """
import os, sys
import torch
from launch import load_training_script
train_vitok = load_training_script("train_vitok")

built = []
build = train_vitok.build_autoencoder
train_vitok.build_autoencoder = lambda args: built.append(build(args)) or built[-1]
results = train_vitok.main(sys.argv[1:])
flat = torch.cat([parameter.detach().flatten() for parameter in built[0].parameters()])
record = {{"parameters": flat, "num_processes": results["num_processes"]}}
torch.save(record, os.path.join({out!r}, f"rank{{os.environ['RANK']}}.pt"))
"""


def test_two_processes_with_torchrun_keep_equal_weights(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DISTRIBUTED_DRIVER.format(out=str(tmp_path)))
    run_two_processes(
        driver,
        *TINY_IMAGE_RUN,
        "--max_train_steps",
        "4",
        "--gradient_accumulation_steps",
        "2",
        "--max_eval_samples",
        "8",
        "--output_dir",
        str(tmp_path / "run"),
        timeout=300,
    )
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    assert rank0["num_processes"] == rank1["num_processes"] == 2
    torch.testing.assert_close(rank0["parameters"], rank1["parameters"], rtol=0, atol=0)
    set_seed(0)  # the script's initialisation
    initial = AutoencoderViTok.from_preset("S-B/16", sample_size=16, **TINY_VITOK)
    initial_parameters = torch.cat([parameter.detach().flatten() for parameter in initial.parameters()])
    assert initial_parameters.shape == rank0["parameters"].shape
    assert not torch.allclose(initial_parameters, rank0["parameters"])  # trained
    assert json.loads((tmp_path / "run" / "all_results.json").read_text())["train_steps"] == 4


# ------------------------------------------------------------------------------------------- run engine (issue 13)

from run_engine_checks import (  # noqa: E402
    TOKEN,
    assert_token_nowhere,
    capture_hub_and_trackers,
    run_killed_after_checkpoint,
)


def test_hub_token_reaches_no_file_upload_tracker_or_log(tmp_path, monkeypatch, caplog, capfd):
    import logging

    caplog.set_level(logging.DEBUG)
    captured = capture_hub_and_trackers(monkeypatch)
    train_vitok.main([*TINY_IMAGE_RUN, "--max_train_steps", "1", "--max_eval_samples", "8", "--output_dir",
                      str(tmp_path / "run"), "--with_tracking", "--push_to_hub", "--hub_token", TOKEN])  # fmt: skip
    out, err = capfd.readouterr()
    assert_token_nowhere(captured, tmp_path / "run", caplog.text + out + err)
    assert "diffusion_pytorch_model.safetensors" in captured["files"]


@pytest.fixture(scope="module")
def digit_image_folder(tmp_path_factory) -> Path:
    """24 digits as an image folder: 21 train after the 10 % held-out split, i.e. 5 batches of 4."""
    root = tmp_path_factory.mktemp("digit_images")
    split = cached_digits(image_size=16)["train"]
    for index in range(24):
        row = split[index]
        folder = root / split.features["label"].int2str(row["label"])
        folder.mkdir(exist_ok=True)
        row["image"].save(folder / f"{index}.png")
    return root


def test_stage2_exact_resume_inside_a_later_epoch_with_uneven_accumulation(
    stage1_run, digit_image_folder, tmp_path, monkeypatch
):
    """5 batches per epoch, accumulation 2: 3 updates per epoch. Killed after checkpoint-4 (epoch 1, one update into
    it), the resumed stage-2 run (GAN, discriminator, EMA) ends with the straight run's weights and EMA."""
    stage1_dir, _ = stage1_run
    arguments = [
        *[flag for flag in TINY_IMAGE_RUN if flag not in ("--dataset_name", "digits")],
        "--train_dir", str(digit_image_folder),
        "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--stage", "2",
        "--model_name_or_path", str(stage1_dir), "--max_train_steps", "7", "--gan_start_step", "1",
        "--gan_ramp_steps", "2", "--discriminator_base_channels", "2", "--discriminator_max_channels", "8",
        "--ema_decay", "0.5", "--checkpointing_steps", "2", "--max_eval_samples", "2",
    ]  # fmt: skip
    train_vitok.main([*arguments, "--output_dir", str(tmp_path / "straight")])
    resumed = [*arguments, "--output_dir", str(tmp_path / "resumed")]
    run_killed_after_checkpoint(train_vitok.main, resumed, 4, monkeypatch)
    train_vitok.main([*resumed, "--resume_from_checkpoint", "latest"])
    for name in (
        "diffusion_pytorch_model.safetensors",
        "checkpoint-7/ema.safetensors",
        "checkpoint-7/model_1.safetensors",
    ):
        expected, actual = load_file(tmp_path / "straight" / name), load_file(tmp_path / "resumed" / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")


def test_torchscript_networks_need_explicit_consent(tmp_path):
    feature_network = tmp_path / "features.pt"
    torch.jit.script(ChannelStatistics()).save(str(feature_network))
    args = train_vitok.parse_args(
        [*TINY_IMAGE_RUN, "--output_dir", str(tmp_path), "--fid_feature_extractor", str(feature_network)]
    )
    with pytest.raises(ValueError, match="trust_torchscript_code: loading the TorchScript network .* runs the code"):
        train_vitok.build_frechet_metrics(args, torch.device("cpu"))
    args.trust_torchscript_code = True
    assert set(train_vitok.build_frechet_metrics(args, torch.device("cpu"))) == {"rfid"}
    args.fid_feature_extractor = "someone/inception"
    with pytest.raises(ValueError, match="revision: a TorchScript network from the Hub .* pinned to a commit"):
        train_vitok.build_frechet_metrics(args, torch.device("cpu"))


def test_model_overrides_take_both_forms_and_name_an_unknown_key(tmp_path):
    base = [*TINY_IMAGE_RUN, "--output_dir", str(tmp_path)]
    as_pairs = train_vitok.parse_args([*base, "--model_overrides", "decoder_depth=2,qk_norm=true"])
    as_json = train_vitok.parse_args([*base, "--model_overrides", '{"decoder_depth": 2, "qk_norm": true}'])
    assert as_pairs.model_overrides == as_json.model_overrides == {"decoder_depth": 2, "qk_norm": True}
    typo = train_vitok.parse_args([*base, "--model_overrides", "decoder_dept=2"])
    with pytest.raises(ValueError, match=r"--model_overrides: unknown config keys \['decoder_dept'\]; valid keys .*"):
        train_vitok.build_autoencoder(typo)
