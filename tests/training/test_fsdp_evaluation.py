"""The evaluation of ``train_vitok.py`` and the sample grids of ``train_dit.py`` with an FSDP2-sharded model.

One ``torchrun --nproc_per_node 2`` launch (gloo) of ``tests/distributed_workers/fsdp_evaluation.py`` shards the
models per block and at the root and runs the scripts' functions on both ranks; this file runs the same functions
in one process on the unsharded models and compares the numbers.
"""

import json
from pathlib import Path

import fsdp_evaluation as worker  # tests/distributed_workers is on pytest's path
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from launch import run_two_processes
from PIL import Image

from hf_compact.recipes.reconstruction import evaluate_reconstruction

WORKER = Path(worker.__file__)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("fsdp-evaluation")
    run_two_processes(WORKER, str(output))
    return output, json.loads((output / "results.json").read_text())


def one_process_reconstruction_metrics(grid_path: Path, with_ema: bool = True) -> dict[str, float]:
    model = worker.vitok_training_forward()
    ema = None
    if with_ema:
        ema = EMAModel(model.autoencoder.decoder.parameters(), decay=0.9)
        worker.load_averages(ema, worker.ema_averages(model.autoencoder.decoder.parameters(), seed=2))
    dataloader = torch.utils.data.DataLoader(worker.vitok_evaluation_data(), batch_size=4)
    model.train()
    return evaluate_reconstruction(
        model, dataloader, Accelerator(cpu=True), {}, grid_path, worker.NUM_GRID_SAMPLES, ema=ema
    )


def one_process_samples(name: str, grid_path: Path) -> np.ndarray:
    model = worker.dit(name)
    ema = EMAModel(model.parameters(), decay=0.9)
    worker.load_averages(ema, worker.ema_averages(model.parameters(), seed=3))
    model.train()
    return worker.train_dit.sample_grid(
        model, ema, worker.dit_vae(name), worker.noise_scheduler(), worker.CLASS_NAMES, worker.SAMPLING,
        Accelerator(cpu=True), grid_path,
    )  # fmt: skip


def assert_restored_for_training(result: dict) -> None:
    """After evaluating, the parameters are shards again (what the optimizer and the EMA hold), with the training
    weights back in place of the EMA's, in training mode, on both ranks."""
    assert result["all_parameters_dtensor"] is True
    assert result["weights_restored"] is True
    assert result["training_mode"] is True


@pytest.mark.slow
def test_vitok_evaluation_of_a_sharded_model_equals_one_process(two_process_run, tmp_path):
    """Both ranks reconstruct their share of 7 images (gather_for_metrics drops the padding); PSNR / SSIM of the
    decoder's EMA weights and the saved grid equal those of the unsharded model in one process."""
    output, results = two_process_run
    assert results["world"] == 2
    result = results["vitok"]
    reference = one_process_reconstruction_metrics(tmp_path / "reference.png")
    assert sorted(result["metrics"]) == sorted(reference) == ["psnr", "ssim"]
    for key, value in reference.items():
        assert result["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    without_ema = one_process_reconstruction_metrics(tmp_path / "without-ema.png", with_ema=False)
    assert abs(without_ema["psnr"] - reference["psnr"]) > 1e-2  # the EMA weights are what was evaluated
    sharded_grid = np.asarray(Image.open(output / "vitok-reconstructions.png"), dtype=np.int16)
    reference_grid = np.asarray(Image.open(tmp_path / "reference.png"), dtype=np.int16)
    assert sharded_grid.shape == reference_grid.shape == (32, 16 * worker.NUM_GRID_SAMPLES, 3)
    assert np.abs(sharded_grid - reference_grid).max() <= 1  # uint8 rounding of float noise at most
    assert_restored_for_training(result)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dit_2d", "dit_3d"])
def test_dit_sample_grid_of_a_sharded_model_equals_one_process(two_process_run, tmp_path, name):
    """Both ranks sample the same labels with the same seed from the EMA weights (every denoising step all-gathers
    them) and get the one-process samples; only rank 0 writes the grid. Image DiT with every unit gathered after
    the forward (fsdp2_dit.yaml), video DiT resharded after each (fsdp2_dit_video.yaml)."""
    output, results = two_process_run
    result = results[name]
    reference = one_process_samples(name, tmp_path / "reference")
    samples = np.load(output / f"{name}-samples.npy")
    rows, per_class = len(worker.CLASS_NAMES), worker.SAMPLING.samples_per_class
    expected_shape = (rows * per_class, 4, 16, 16, 3) if name == "dit_3d" else (rows * per_class, 16, 16, 3)
    assert samples.shape == reference.shape == expected_shape
    assert samples.std() > 0.01  # not a constant image
    np.testing.assert_allclose(samples, reference, rtol=0, atol=1e-5)
    assert result["ranks_sampled_equal"] is True
    suffix = ".gif" if name == "dit_3d" else ".png"
    assert result["saves_per_rank"] == [[str(output / f"{name}-grid")], []]
    assert (output / f"{name}-grid{suffix}").is_file()
    assert_restored_for_training(result)
    # train_dit.main's per-process weight sum: that of the full weights under FSDP2, so equal to one process's
    expected_sum = sum(parameter.detach().double().sum().item() for parameter in worker.dit(name).parameters())
    assert result["parameter_sum"] == pytest.approx(expected_sum, rel=1e-12)
