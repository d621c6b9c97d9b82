"""The ViTok-v2 decoder fine-tuning recipe (training/configs/finetune_vitok_v2_decoder_fsdp2.yaml) at tiny size on
the CPU: it parses with train_vitok.py's flags and, with only the sizes overridden, trains the decoder of a
ViTok-v2-architecture autoencoder while its encoder stays frozen. The FSDP2 + activation-checkpointing part of the
recipe is tested in tests/test_fsdp.py (two gloo processes); Accelerate itself enables FSDP only on GPUs."""

import functools
import json

import pytest
import torch
from launch import TRAINING_DIR, load_training_script

from hf_compact import AutoencoderViTok
from hf_compact.data import loading
from hf_compact.vitok.presets import VITOK_PRESETS

train_vitok = load_training_script("train_vitok")
RECIPE = TRAINING_DIR / "configs" / "finetune_vitok_v2_decoder_fsdp2.yaml"
SIZES = ("width", "depth", "heads")


def tiny_vitok_v2() -> AutoencoderViTok:
    """The ViTok-v2 block design (parallel RMSNorm blocks, SwiGLU, LayerScale, 2-D RoPE) at a few thousand weights."""
    architecture = {
        key: value for key, value in VITOK_PRESETS["v2-5B-f16x16"].items()
        if not any(size in key for size in SIZES) and key not in ("patch_size", "latent_channels")
    }  # fmt: skip
    torch.manual_seed(0)
    return AutoencoderViTok(
        **architecture, patch_size=4, latent_channels=4, encoder_width=16, encoder_depth=1, encoder_heads=1,
        decoder_width=16, decoder_depth=2, decoder_heads=1, sample_size=16,
    )  # fmt: skip


def test_recipe_is_a_frozen_encoder_decoder_fine_tune():
    args = train_vitok.parse_args(["--config", str(RECIPE), "--lpips_model_name_or_path", "lpips-vgg"])
    assert args.stage == 2 and args.model_name_or_path == "vitok-v2-5b-f16x16"
    assert args.gradient_checkpointing is False  # the FSDP config checkpoints the blocks
    assert args.mixed_precision == "bf16" and args.lpips_weight == 1.0


@pytest.mark.slow
def test_tiny_run_of_the_recipe_trains_only_the_decoder(tmp_path, monkeypatch):
    tiny_vitok_v2().save_pretrained(tmp_path / "vitok-v2-tiny")
    monkeypatch.setitem(loading.BUNDLED_DATASETS, "digits", functools.cache(loading.BUNDLED_DATASETS["digits"]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = train_vitok.main([
            "--config", str(RECIPE), "--model_name_or_path", str(tmp_path / "vitok-v2-tiny"),
            "--dataset_name", "digits", "--resolution", "16", "--lpips_weight", "0", "--mixed_precision", "no",
            "--max_train_steps", "4", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
            "--max_eval_samples", "8", "--learning_rate", "1e-3", "--gan_start_step", "1", "--gan_ramp_steps", "2",
            "--discriminator_warmup_steps", "1", "--discriminator_base_channels", "2",
            "--discriminator_max_channels", "8", "--output_dir", str(tmp_path / "run"),
        ])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert results["train_steps"] == 4
    before = AutoencoderViTok.from_pretrained(tmp_path / "vitok-v2-tiny")
    after = AutoencoderViTok.from_pretrained(tmp_path / "run")
    assert after.config.block_type == "parallel" and after.config.norm_type == "rms"
    for name, value in before.encoder.state_dict().items():
        assert torch.equal(after.encoder.state_dict()[name], value), name
    assert any(
        not torch.equal(after.decoder.state_dict()[name], value) for name, value in before.decoder.state_dict().items()
    )
    assert json.loads((tmp_path / "run" / "all_results.json").read_text())["train_steps"] == 4
