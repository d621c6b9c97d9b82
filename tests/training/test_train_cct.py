"""training/train_cct.py (Accelerate) and training/finetune_cct_trainer.py (Trainer) on tiny CCTs and the digits."""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from launch import TRAINING_DIR, load_training_script, run_two_processes
from PIL import Image
from safetensors.torch import load_file

from hf_compact.data import DIGIT_NAMES, loading
from hf_compact.training_utils.schedules import (
    cosine_learning_rate,
    get_cosine_schedule_with_warmup_and_cooldown,
)
from hf_compact.utils.overrides import parse_overrides

train_cct = load_training_script("train_cct")
finetune_cct_trainer = load_training_script("finetune_cct_trainer")

TINY_MODEL = [
    "--preset", "cct_2_3x2_32", "--image_size", "16",
    "--config_overrides", "hidden_size=32,intermediate_size=64,num_hidden_layers=1,conv_intermediate_channels=16",
]  # fmt: skip
TINY_DATA = ["--dataset_name", "digits", "--max_eval_samples", "64"]


@pytest.fixture(scope="module", autouse=True)
def cached_digits():
    """Build the digits once for the whole module (the scripts call ``load_digits_dataset`` on every run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(loading.BUNDLED_DATASETS, "digits", functools.lru_cache(loading.BUNDLED_DATASETS["digits"]))
        yield


def test_schedule_warmup_peak_cosine_cooldown():
    lr = functools.partial(
        cosine_learning_rate,
        peak_lr=1e-3,
        num_warmup_steps=10,
        num_training_steps=110,
        num_cooldown_steps=20,
        warmup_start_lr=1e-6,
        min_lr=1e-5,
    )
    assert lr(0) == pytest.approx(1e-6)
    assert lr(5) == pytest.approx(1e-6 + (1e-3 - 1e-6) / 2)
    assert lr(10) == pytest.approx(1e-3)  # peak at the end of the warmup
    assert lr(50) == pytest.approx((1e-3 + 1e-5) / 2)  # half-way through the cosine (steps 10..90)
    assert lr(89) > 1e-5 and lr(90) == pytest.approx(1e-5)
    assert lr(100) == lr(109) == pytest.approx(1e-5)  # cooldown


def test_scheduler_scales_every_param_group():
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": weights[:1], "lr": 1e-3}, {"params": weights[1:], "lr": 2e-3}])
    scheduler = get_cosine_schedule_with_warmup_and_cooldown(
        optimizer,
        num_warmup_steps=2,
        num_training_steps=6,
        num_cooldown_steps=2,
        warmup_start_lr=0.0,
        min_lr=1e-4,
    )
    seen = []
    for _ in range(6):
        seen.append(scheduler.get_last_lr())
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx([0.0, 0.0])
    assert seen[2] == pytest.approx([1e-3, 2e-3])
    assert seen[4] == seen[5] == pytest.approx([1e-4, 1e-4])
    with pytest.raises(ValueError, match="num_warmup_steps \\+ num_cooldown_steps"):
        get_cosine_schedule_with_warmup_and_cooldown(optimizer, 5, 6, num_cooldown_steps=2)


def test_config_overrides_are_typed():
    overrides = parse_overrides("hidden_size=64, drop_path_rate=0.0,position_embedding_type=sine")
    assert overrides == {"hidden_size": 64, "drop_path_rate": 0.0, "position_embedding_type": "sine"}
    assert parse_overrides('{"hidden_size": 64, "drop_path_rate": 0.0}') == {"hidden_size": 64, "drop_path_rate": 0.0}
    with pytest.raises(ValueError, match="name=value"):
        parse_overrides("hidden_size")


# The official recipes (SHI-Labs/Compact-Transformers configs/ and the paper's appendix): (file, preset or checkpoint,
# lr, min_lr, warmup_lr, weight decay, epochs, warmup, batch, crop_pct, crop_scale, random erasing, mixup_off_epoch).
C = [0.8, 1.0]  # the CIFAR / Flowers crop scale
RECIPES = [
    ("cct_cifar10_300epochs", "cct_7_3x1_32", 5.5e-4, 1e-5, 1e-5, 0.06, 300, 10, 128, 1.0, C, 0.0, 175),
    ("cct_cifar10_5000epochs", "cct_7_3x1_32_sine", 5e-4, 1e-5, 1e-5, 0.05, 5000, 10, 128, 1.0, C, 0.25, None),
    ("cct_cifar100_300epochs", "cct_7_3x1_32_c100", 6e-4, 1e-5, 1e-6, 0.06, 300, 10, 128, 1.0, C, 0.25, None),
    ("cct_cifar100_5000epochs", "cct_7_3x1_32_sine_c100", 5e-4, 1e-5, 1e-6, 0.05, 5000, 10, 128, 1.0, C, 0.25, None),
    ("cct_flowers102", "cct_7_7x2_224_sine", 5e-4, 1e-5, 1e-6, 0.06, 300, 10, 96, 1.0, C, 0.25, None),
    ("cct_imagenet", "cct_14_7x2_224", 5e-4, 1e-5, 1e-6, 0.05, 300, 10, 128, 0.9, [0.08, 1.0], 0.25, None),
    ("cct_imagenet384_finetune", None, 1e-5, 0.0, 0.0, 0.0, 30, 0, 96, 0.9, [0.08, 1.0], 0.25, None),
]  # fmt: skip


@pytest.mark.parametrize("recipe", RECIPES, ids=[recipe[0] for recipe in RECIPES])
def test_recipe_files_hold_the_official_numbers(recipe):
    (
        name,
        preset,
        lr,
        min_lr,
        warmup_lr,
        weight_decay,
        epochs,
        warmup,
        batch,
        crop_pct,
        scale,
        erasing,
        mix_off,
    ) = recipe
    args = train_cct.parse_args(["--config", str(TRAINING_DIR / "configs" / f"{name}.yaml")])
    assert args.preset == preset
    assert (args.learning_rate, args.min_lr, args.warmup_lr, args.weight_decay) == (
        lr,
        min_lr,
        warmup_lr,
        weight_decay,
    )
    assert (args.num_train_epochs, args.warmup_epochs, args.cooldown_epochs) == (epochs, warmup, 10)
    assert (args.per_device_train_batch_size, args.crop_pct, list(args.crop_scale)) == (
        batch,
        crop_pct,
        scale,
    )
    assert (args.random_erasing_prob, args.mixup_off_epoch) == (erasing, mix_off)
    assert (args.mixup_alpha, args.cutmix_alpha, args.mixup_switch_prob, args.label_smoothing) == (
        0.8,
        1.0,
        0.5,
        0.1,
    )
    assert (args.randaugment_num_ops, args.randaugment_magnitude, args.randaugment_magnitude_std) == (
        2,
        9,
        0.5,
    )
    if preset is None:
        assert args.image_size == 384 and args.model_name_or_path


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory) -> Path:
    """A tiny CCT trained for 40 updates through a --config YAML file (augmentations off so it learns fast)."""
    output_dir = tmp_path_factory.mktemp("cct_run")
    config = {
        "per_device_train_batch_size": 32,
        "max_train_samples": 256,
        "max_train_steps": 40,
        "learning_rate": 1e-2,
        "warmup_epochs": 1,
        "cooldown_epochs": 0,
        "no_random_resized_crop": True,
        "hflip_prob": 0.0,
        "randaugment_num_ops": 0,
        "random_erasing_prob": 0.0,
        "mixup_prob": 0.0,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "output_dir": str(output_dir),
    }
    config_file = output_dir / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(config))
    results = train_cct.main(["--config", str(config_file), *TINY_MODEL, *TINY_DATA])
    (output_dir / "test_results.json").write_text(json.dumps(results))
    return output_dir


def test_training_lowers_the_loss_and_saves_a_pipeline_folder(trained_dir):
    from transformers import pipeline

    from hf_compact import CCTForImageClassification, CCTImageProcessor
    from hf_compact.data import load_digits_dataset

    results = json.loads((trained_dir / "test_results.json").read_text())
    losses = results["train_losses"]
    assert results["train_steps"] == len(losses) == 40
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8 - 0.3, losses
    assert 0.0 <= results["eval_accuracy"] <= results["eval_top_5_accuracy"] <= 1.0
    assert (trained_dir / "checkpoint-40" / "training_state.json").is_file()

    model = CCTForImageClassification.from_pretrained(trained_dir).eval()
    assert [model.config.id2label[i] for i in range(10)] == DIGIT_NAMES
    assert model.config.image_size == 16 and model.config.hidden_size == 32
    processor = CCTImageProcessor.from_pretrained(trained_dir)
    assert list(processor.image_mean) == [0.5, 0.5, 0.5] and processor.size["height"] == 16

    images = load_digits_dataset(image_size=16)["test"]["image"][:3]
    classifier = pipeline("image-classification", model=str(trained_dir), device="cpu")
    predictions = classifier(images, top_k=1)
    with torch.no_grad():
        probabilities = model(**processor(images, return_tensors="pt")).logits.softmax(-1)
    for prediction, row in zip(predictions, probabilities):
        assert prediction[0]["label"] == DIGIT_NAMES[int(row.argmax())]
        assert prediction[0]["score"] == pytest.approx(float(row.max()), abs=1e-5)


def test_kill_and_resume_reaches_the_same_weights(tmp_path, monkeypatch):
    """Full recipe (crop, flip, RandAugment, erasing, Mixup/CutMix, EMA, accumulation): a run that dies after its
    step-2 checkpoint and resumes with ``latest`` ends with the same weights as an uninterrupted run."""
    run = [
        *TINY_MODEL, *TINY_DATA, "--max_train_samples", "96", "--per_device_train_batch_size", "16",
        "--gradient_accumulation_steps", "2", "--max_train_steps", "7", "--warmup_epochs", "1",
        "--cooldown_epochs", "0", "--learning_rate", "3e-3", "--use_ema", "--ema_decay", "0.9",
        "--random_erasing_prob", "0.5", "--max_eval_samples", "16",
    ]  # fmt: skip
    straight = train_cct.main([*run, "--output_dir", str(tmp_path / "straight")])

    class Killed(Exception):
        pass

    from run_engine import run as run_module

    save_checkpoint = run_module.save_checkpoint

    def dies_at_step_4(accelerator, output_dir, step, *args, **kwargs):
        if step == 4:
            raise Killed
        return save_checkpoint(accelerator, output_dir, step, *args, **kwargs)

    resumed_dir = tmp_path / "resumed"
    monkeypatch.setattr(run_module, "save_checkpoint", dies_at_step_4)
    with pytest.raises(Killed):
        train_cct.main([*run, "--output_dir", str(resumed_dir), "--checkpointing_steps", "2"])
    monkeypatch.setattr(run_module, "save_checkpoint", save_checkpoint)
    assert sorted(path.name for path in resumed_dir.glob("checkpoint-*")) == ["checkpoint-2"]
    resumed = train_cct.main(
        [
            *run,
            "--output_dir",
            str(resumed_dir),
            "--checkpointing_steps",
            "2",
            "--resume_from_checkpoint",
            "latest",
        ]
    )

    assert resumed["train_losses"] == pytest.approx(straight["train_losses"][2:], abs=1e-6)
    straight_weights = load_file(tmp_path / "straight" / "model.safetensors")
    resumed_weights = load_file(resumed_dir / "model.safetensors")
    assert straight_weights.keys() == resumed_weights.keys()
    for name, tensor in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_trainer_fine_tunes_a_saved_model(trained_dir, tmp_path):
    output_dir = tmp_path / "trainer"
    metrics = finetune_cct_trainer.main(
        [
            "--model_name_or_path", str(trained_dir), *TINY_DATA, "--max_train_samples", "64",
            "--per_device_train_batch_size", "16", "--max_steps", "3", "--learning_rate", "1e-3",
            "--hflip_prob", "0", "--output_dir", str(output_dir), "--report_to", "none", "--save_strategy", "no",
            "--use_cpu", "--seed", "0",
        ]
    )  # fmt: skip
    assert metrics["epoch"] > 0 and torch.isfinite(torch.tensor(metrics["train_loss"]))
    assert 0.0 <= metrics["eval_accuracy"] <= metrics["eval_top_5_accuracy"] <= 1.0
    before = load_file(trained_dir / "model.safetensors")
    after = load_file(output_dir / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[name], after[name]) for name in before), "fine-tuning changed nothing"
    assert (output_dir / "preprocessor_config.json").is_file()
    # Saved with its modelling code (loads with trust_remote_code=True where hf-compact is not installed).
    assert "AutoModelForImageClassification" in json.loads((output_dir / "config.json").read_text())["auto_map"]


def test_trainer_lora_saves_an_adapter_and_changes_a_small_fraction_of_the_weights(trained_dir, tmp_path):
    from peft import PeftModel

    from hf_compact import CCTForImageClassification

    output_dir = tmp_path / "lora"
    metrics = finetune_cct_trainer.main(
        [
            "--model_name_or_path", str(trained_dir), *TINY_DATA, "--max_train_samples", "64",
            "--per_device_train_batch_size", "16", "--max_steps", "3", "--learning_rate", "1e-2",
            "--hflip_prob", "0", "--output_dir", str(output_dir), "--report_to", "none", "--save_strategy", "no",
            "--use_cpu", "--seed", "0", "--lora_rank", "4",
        ]
    )  # fmt: skip
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0  # labels reach the metrics through the PEFT wrapper
    assert not (output_dir / "model.safetensors").exists()
    adapter_config = json.loads((output_dir / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and adapter_config["modules_to_save"] == ["classifier"]
    assert set(adapter_config["target_modules"]) == {"qkv", "out_proj"}
    adapter = load_file(output_dir / "adapter_model.safetensors")
    assert any("classifier" in name for name in adapter) and any("lora_A" in name for name in adapter)

    before = load_file(trained_dir / "model.safetensors")
    # rank 4 on the width-32 layer: (32 + 96) * 4 + (32 + 32) * 4 = 768 adapter weights, the classifier 330.
    assert sum(tensor.numel() for tensor in adapter.values()) == 768 + 330
    assert 768 + 330 < 0.08 * sum(tensor.numel() for tensor in before.values())

    base = CCTForImageClassification.from_pretrained(trained_dir)
    merged = PeftModel.from_pretrained(base, output_dir).merge_and_unload().state_dict()
    changed = {name for name in before if not torch.equal(before[name], merged[name])}
    assert changed == {
        "cct.encoder.layers.0.attention.qkv.weight",
        "cct.encoder.layers.0.attention.out_proj.weight",
        "classifier.weight",
        "classifier.bias",
    }


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="--preset / --model_name_or_path"):
        train_cct.parse_args(["--preset", "cct_2_3x2_32", "--model_name_or_path", "x", "--dataset_name", "digits",
                              "--output_dir", str(tmp_path)])  # fmt: skip
    with pytest.raises(ValueError, match="has keys that are not flags"):
        bad_config = tmp_path / "bad.yaml"
        bad_config.write_text("learning_rat: 0.1\n")
        train_cct.parse_args(["--config", str(bad_config)])
    with pytest.raises(ValueError, match="--image_column_name"):
        train_cct.main([*TINY_MODEL, *TINY_DATA, "--image_column_name", "img", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--warmup_epochs: expected at most the --num_train_epochs 3"):
        train_cct.main([*TINY_MODEL, *TINY_DATA, "--max_train_samples", "64", "--per_device_train_batch_size", "32",
                        "--num_train_epochs", "3", "--output_dir", str(tmp_path / "warmup")])  # fmt: skip
    with pytest.raises(ValueError, match=r"--config_overrides: unknown config keys \['hiden_size'\]; valid keys"):
        train_cct.main([*TINY_MODEL[:4], "--config_overrides", "hiden_size=8", *TINY_DATA,
                        "--output_dir", str(tmp_path / "typo")])  # fmt: skip


# One rank under torchrun: trains, and records the parameters this rank holds when it evaluates.
RANK_SCRIPT = """
import json, os, sys
from launch import load_training_script
from safetensors.torch import save_file
from hf_compact.metrics import accuracy
evaluate_accuracy = accuracy.evaluate_accuracy
def record_then_evaluate(model, dataloader, accelerator, *args):
    state = {name: value.detach().contiguous() for name, value in accelerator.unwrap_model(model).state_dict().items()}
    save_file(state, f"{sys.argv[1]}/rank{accelerator.process_index}.safetensors")
    return evaluate_accuracy(model, dataloader, accelerator, *args)
accuracy.evaluate_accuracy = record_then_evaluate
results = load_training_script("train_cct").main(sys.argv[2:])
with open(f"{sys.argv[1]}/results{os.environ['RANK']}.json", "w") as handle:
    json.dump({**results, "world": int(os.environ["WORLD_SIZE"])}, handle)
"""


@pytest.mark.slow
def test_two_processes_reach_identical_parameters(tmp_path):
    """`torchrun --nproc_per_node 2` (gloo on CPU): each rank sees other batches, yet the all-reduced updates keep
    the parameters identical, and the loss goes down."""
    argv = [
        *TINY_MODEL, *TINY_DATA, "--max_train_samples", "512", "--per_device_train_batch_size", "32",
        "--max_train_steps", "24", "--warmup_epochs", "0", "--cooldown_epochs", "0", "--learning_rate", "1e-2",
        "--no_random_resized_crop", "--hflip_prob", "0", "--randaugment_num_ops", "0", "--mixup_prob", "0",
        "--random_erasing_prob", "0", "--output_dir", str(tmp_path / "run"),
    ]  # fmt: skip
    rank_script = tmp_path / "rank_script.py"
    rank_script.write_text(RANK_SCRIPT)
    run_two_processes(rank_script, str(tmp_path), *argv, timeout=300)

    rank0, rank1 = (load_file(tmp_path / f"rank{rank}.safetensors") for rank in (0, 1))
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), name
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.equal(saved[name], tensor) for name, tensor in rank0.items())
    first_losses = None
    for rank in (0, 1):
        results = json.loads((tmp_path / f"results{rank}.json").read_text())
        losses = results["train_losses"]
        assert results["world"] == 2
        assert len(losses) == 24  # 512 images / (2 ranks x 32) = 8 updates per epoch, 3 epochs
        assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6 - 0.2, losses
        assert losses != first_losses, "both ranks trained on the same batches"
        first_losses = losses


# ------------------------------------------------------------------------------------------- run engine (issue 13)

from run_engine_checks import (  # noqa: E402
    TOKEN,
    assert_token_nowhere,
    capture_hub_and_trackers,
    run_killed_after_checkpoint,
)

QUICK_RUN = [
    *TINY_MODEL, *TINY_DATA, "--max_train_samples", "80", "--per_device_train_batch_size", "16",
    "--warmup_epochs", "0", "--cooldown_epochs", "0", "--max_eval_samples", "16",
]  # fmt: skip


def test_hub_token_reaches_no_file_upload_tracker_or_log(tmp_path, monkeypatch, caplog, capfd):
    import logging

    caplog.set_level(logging.DEBUG)
    captured = capture_hub_and_trackers(monkeypatch)
    output_dir = tmp_path / "run"
    train_cct.main([*QUICK_RUN, "--max_train_steps", "2", "--output_dir", str(output_dir), "--with_tracking",
                    "--push_to_hub", "--hub_model_id", "someone/cct", "--hub_token", TOKEN])  # fmt: skip
    out, err = capfd.readouterr()
    assert_token_nowhere(captured, output_dir, caplog.text + out + err)
    assert captured["repo_id"] == "someone/cct"
    config = json.loads((output_dir / "training_config.json").read_text())
    assert config["max_train_steps"] == 2 and "hub_token" not in config
    assert json.loads(captured["files"]["all_results.json"])["train_steps"] == 2


def test_exact_resume_inside_a_later_epoch_with_uneven_accumulation(tmp_path, monkeypatch):
    """5 batches per epoch, accumulation 2: Accelerate makes 3 updates per epoch (the last one on 1 batch). Killed
    after checkpoint-4 (epoch 1, one update into it), the resumed run ends with the straight run's weights and EMA."""
    run = [*QUICK_RUN, "--gradient_accumulation_steps", "2", "--max_train_steps", "8", "--use_ema", "--ema_decay",
           "0.9", "--learning_rate", "3e-3", "--checkpointing_steps", "2"]  # fmt: skip
    straight = train_cct.main([*run, "--output_dir", str(tmp_path / "straight")])
    resumed_dir = tmp_path / "resumed"
    run_killed_after_checkpoint(train_cct.main, [*run, "--output_dir", str(resumed_dir)], 4, monkeypatch)
    resumed = train_cct.main([*run, "--output_dir", str(resumed_dir), "--resume_from_checkpoint", "latest"])
    assert resumed["train_losses"] == pytest.approx(straight["train_losses"][4:], abs=1e-6)
    for name in ("model.safetensors", "checkpoint-8/ema.safetensors", "checkpoint-8/model.safetensors"):
        expected, actual = load_file(tmp_path / "straight" / name), load_file(resumed_dir / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")


def test_planted_pickle_in_a_checkpoint_is_refused_and_never_runs(tmp_path):
    import pickle

    output_dir = tmp_path / "run"
    run = [*QUICK_RUN, "--max_train_steps", "2", "--use_ema", "--output_dir", str(output_dir)]
    train_cct.main(run)
    marker = tmp_path / "code-ran"

    class WritesMarker:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (output_dir / "checkpoint-2" / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(WritesMarker()))
    with pytest.raises(ValueError, match="refusing .*custom_checkpoint_0.pkl"):
        train_cct.main([*run, "--max_train_steps", "3", "--resume_from_checkpoint", "latest"])
    assert not marker.exists()


def test_a_finished_run_is_never_overwritten_silently(tmp_path):
    output_dir = tmp_path / "run"
    run = [
        *QUICK_RUN,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--output_dir",
        str(output_dir),
    ]
    train_cct.main(run)
    before = (output_dir / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="--output_dir: .* already holds a run .*--overwrite_output_dir"):
        train_cct.main([*QUICK_RUN, "--max_train_steps", "1", "--output_dir", str(output_dir)])
    assert (output_dir / "model.safetensors").read_bytes() == before
    train_cct.main([*QUICK_RUN, "--max_train_steps", "1", "--output_dir", str(output_dir), "--overwrite_output_dir"])
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-1"]
    assert json.loads((output_dir / "all_results.json").read_text())["train_steps"] == 1


def test_unwritable_output_dir_fails_before_training(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(loading, "load_image_dataset", lambda *args: pytest.fail("training started"))
    with pytest.raises(OSError, match="--output_dir: cannot write to .*a-file/run"):
        train_cct.main([*QUICK_RUN, "--output_dir", str(blocker / "run")])
    with pytest.raises(ValueError, match="--checkpoints_total_limit: expected a positive integer"):
        train_cct.main([*QUICK_RUN, "--output_dir", str(tmp_path / "x"), "--checkpoints_total_limit", "0"])


# ------------------------------------------------------------------------------------------- own data (issue 27)


def save_class_images(folder: Path, classes: dict[str, int]) -> None:
    generator = np.random.default_rng(0)
    for name, count in classes.items():
        (folder / name).mkdir(parents=True)
        for index in range(count):
            image = generator.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(image).save(folder / name / f"{index}.png")


OWN_DATA_RUN = [
    *TINY_MODEL, "--per_device_train_batch_size", "4", "--max_train_steps", "1", "--warmup_epochs", "0",
    "--cooldown_epochs", "0",
]  # fmt: skip


def test_a_folder_name_with_glob_characters_is_taken_literally(tmp_path):
    save_class_images(tmp_path / "imgs [1]", {"cat": 10, "dog": 10})
    save_class_images(tmp_path / "imgs 1", {"bus": 10, "car": 10, "van": 10})  # what the pattern "imgs [1]" matches
    train_cct.main([*OWN_DATA_RUN, "--train_dir", str(tmp_path / "imgs [1]"), "--output_dir", str(tmp_path / "run")])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["id2label"] == {"0": "cat", "1": "dog"}


def test_a_truncated_image_is_named_before_the_first_step(tmp_path):
    save_class_images(tmp_path / "data", {"cat": 10, "dog": 10})
    broken = tmp_path / "data" / "dog" / "3.png"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(OSError, match="dog/3.png"):
        train_cct.main([*OWN_DATA_RUN, "--train_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "run")])
    assert not list((tmp_path / "run").glob("checkpoint-*"))


def test_an_image_folder_on_the_command_line_replaces_the_recipes_dataset():
    recipe = TRAINING_DIR / "configs" / "cct_cifar100_300epochs.yaml"
    args = train_cct.parse_args(["--config", str(recipe), "--train_dir", "mine/"])
    assert (args.dataset_name, args.train_dir) == (None, "mine/")
    assert (args.image_column_name, args.label_column_name) == ("image", "label")  # the columns of a folder
    assert args.preset == "cct_7_3x1_32_c100" and args.num_train_epochs == 300  # the rest of the recipe stays
    with pytest.raises(SystemExit):  # no prefix matching: --learning is not --learning_rate
        train_cct.parse_args(["--config", str(recipe), "--learning", "0.1"])


def test_a_warmup_longer_than_a_short_run_keeps_its_share_of_it(tmp_path, capsys):
    train_cct.main([*TINY_MODEL, *TINY_DATA, "--max_train_samples", "64", "--per_device_train_batch_size", "32",
                    "--max_train_steps", "4", "--output_dir", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert "--warmup_epochs 10 (20 updates of 2 per epoch) does not fit the 4 updates" in out
    assert "warming up over 1 of them" in out and "A short run" in out and "--mixup_prob 0" in out


def test_a_resume_that_changes_the_augmentation_is_refused(tmp_path):
    run = [*QUICK_RUN, "--max_train_steps", "2", "--checkpointing_steps", "1", "--output_dir", str(tmp_path / "run")]
    train_cct.main(run)
    with pytest.raises(ValueError, match="--mixup_prob 1.0 -> 0.5. Pass the earlier values"):
        train_cct.main(
            [*run, "--mixup_prob", "0.5", "--resume_from_checkpoint", str(tmp_path / "run" / "checkpoint-1")]
        )
