"""The folders the training scripts save load where hf-compact is not installed (`trust_remote_code=True`), and
with plain `from_pretrained` where it is."""

import functools
import json
import logging
import textwrap

import pytest
import torch
from launch import load_training_script
from no_hf_compact import NO_HF_COMPACT, run_without_hf_compact
from safetensors.torch import save_file

from hf_compact import CCTForImageClassification, CCTImageProcessor
from hf_compact.data import load_digits_dataset, loading

train_cct = load_training_script("train_cct")

TINY_RUN = [
    "--preset", "cct_2_3x2_32", "--image_size", "16",
    "--config_overrides", "hidden_size=32,intermediate_size=64,num_hidden_layers=1,conv_intermediate_channels=16",
    "--dataset_name", "digits", "--max_train_samples", "32", "--max_eval_samples", "16",
    "--per_device_train_batch_size", "16", "--max_train_steps", "2", "--warmup_epochs", "0", "--cooldown_epochs", "0",
]  # fmt: skip

PLAIN_USER = NO_HF_COMPACT + textwrap.dedent(
    r"""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained("run", trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained("run", trust_remote_code=True)
    expected = load_file("expected.safetensors")
    with torch.no_grad():
        logits = model(**processor(list(expected["images"]), return_tensors="pt")).logits
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-6)
    print(json.dumps({"module": type(model).__module__, "processor": type(processor).__name__}))
    """
)


@pytest.fixture(scope="module")
def cct_run(tmp_path_factory):
    """The output folder of a 2-update train_cct run on the digits."""
    folder = tmp_path_factory.mktemp("saved") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(loading.BUNDLED_DATASETS, "digits", functools.lru_cache(loading.BUNDLED_DATASETS["digits"]))
        train_cct.main([*TINY_RUN, "--output_dir", str(folder)])
    return folder


def test_a_train_cct_folder_loads_without_hf_compact_with_the_same_logits(cct_run):
    config = json.loads((cct_run / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModelForImageClassification"}
    images = load_digits_dataset(image_size=16)["test"]["image"][:4]
    model = CCTForImageClassification.from_pretrained(cct_run).eval()
    processor = CCTImageProcessor.from_pretrained(cct_run)
    with torch.no_grad():
        logits = model(**processor(images, return_tensors="pt")).logits
    pixels = torch.stack([torch.as_tensor(list(image.getdata()), dtype=torch.uint8) for image in images])
    save_file(
        {"images": pixels.view(len(images), 16, 16, -1).contiguous(), "logits": logits},
        cct_run.parent / "expected.safetensors",
    )
    outputs = run_without_hf_compact(PLAIN_USER, cct_run.parent)
    assert not outputs["module"].startswith("hf_compact")  # the code that travelled with the folder
    assert outputs["processor"] == "CCTImageProcessor"


def test_hf_compact_users_load_the_folder_without_trust_remote_code_or_warnings(cct_run, caplog):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    caplog.set_level(logging.WARNING)
    model = AutoModelForImageClassification.from_pretrained(cct_run)
    processor = AutoImageProcessor.from_pretrained(cct_run)
    assert type(model) is CCTForImageClassification and type(processor) is CCTImageProcessor
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING], caplog.text


# ---------------------------------------------------------------- train_vitok: a diffusers model

train_vitok = load_training_script("train_vitok")

TINY_VITOK_RUN = [
    "--dataset_name", "digits", "--resolution", "16", "--preset", "S-B/16", "--lpips_weight", "0",
    "--model_overrides", "encoder_width=16,encoder_depth=1,encoder_heads=2,decoder_width=16,decoder_depth=1,"
    "decoder_heads=2,latent_channels=4,patch_size=4",
    "--per_device_train_batch_size", "8", "--max_eval_samples", "8", "--max_train_steps", "2", "--seed", "0",
]  # fmt: skip

PLAIN_DIFFUSERS_USER = NO_HF_COMPACT + textwrap.dedent(
    r"""
    import torch
    from diffusers import AutoModel
    from safetensors.torch import load_file

    vae = AutoModel.from_pretrained("run", trust_remote_code=True).eval()
    expected = load_file("expected.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(vae.decode(expected["latents"]).sample, expected["decoded"], rtol=0, atol=0)
    print(json.dumps({"module": type(vae).__module__}))
    """
)


def test_a_train_vitok_folder_loads_in_plain_diffusers_and_for_hf_compact_users_without_warnings(tmp_path, caplog):
    from hf_compact import AutoencoderViTok

    train_vitok.main([*TINY_VITOK_RUN, "--output_dir", str(tmp_path / "run")])
    assert "auto_map" in json.loads((tmp_path / "run" / "config.json").read_text())
    caplog.set_level(logging.WARNING)
    vae = AutoencoderViTok.from_pretrained(tmp_path / "run").eval()
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING], caplog.text
    latents = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        save_file(
            {"latents": latents, "decoded": vae.decode(latents).sample.contiguous()}, tmp_path / "expected.safetensors"
        )
    outputs = run_without_hf_compact(PLAIN_DIFFUSERS_USER, tmp_path)
    assert not outputs["module"].startswith("hf_compact")  # the code that travelled with the folder
