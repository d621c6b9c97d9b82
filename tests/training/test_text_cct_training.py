"""Training scripts of the text models: Accelerate loop (loss goes down, exact resumption, two processes) and the
`Trainer` example (with frozen pretrained word vectors)."""

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from launch import load_training_script, run_two_processes
from safetensors.torch import load_file
from transformers import AutoTokenizer, pipeline

from hf_compact import TEXT_CCT_PRESETS, TextCCTConfig, TextCCTForSequenceClassification
from hf_compact.utils.overrides import parse_overrides

ROOT = Path(__file__).resolve().parents[2]

finetune_text_cct_trainer = load_training_script("finetune_text_cct_trainer")
train_text_cct = load_training_script("train_text_cct")

TOPICS = {
    "sports": "match team goal player coach season win league score ball".split(),
    "business": "market stock profit company shares bank price trade deal investor".split(),
    "science": "space research study cells planet energy physics data lab experiment".split(),
}
FILLER = "the a of and in to is on for with".split()
TINY_MODEL = "word_embedding_dim=16,hidden_size=16,intermediate_size=32"


@pytest.fixture(scope="module")
def topic_files(tmp_path_factory) -> tuple[Path, Path]:
    """Three-topic texts of 2..20 words (half topic words, half filler) as JSON lines: 192 to train, 48 to test."""
    folder = tmp_path_factory.mktemp("topics")
    generator = random.Random(0)
    rows = []
    for index in range(240):
        label = list(TOPICS)[index % 3]
        words = [
            generator.choice(TOPICS[label] if generator.random() < 0.5 else FILLER)
            for _ in range(generator.randint(2, 20))
        ]
        rows.append(json.dumps({"text": " ".join(words), "label": label}))
    (folder / "train.jsonl").write_text("\n".join(rows[:192]) + "\n")
    (folder / "test.jsonl").write_text("\n".join(rows[192:]) + "\n")
    return folder / "train.jsonl", folder / "test.jsonl"


def script_arguments(topic_files, output_dir, *extra: str) -> list[str]:
    train_file, test_file = topic_files
    return [
        "--preset",
        "text_cct_2",
        "--config_overrides",
        TINY_MODEL,
        "--train_file",
        str(train_file),
        "--validation_file",
        str(test_file),
        "--output_dir",
        str(output_dir),
        "--per_device_train_batch_size",
        "32",
        "--learning_rate",
        "1e-2",
        "--label_smoothing",
        "0",
        "--seed",
        "0",
        *extra,
    ]


def test_accelerate_script_learns_and_saves_a_pipeline_ready_folder(topic_files, tmp_path):
    results = train_text_cct.main(script_arguments(topic_files, tmp_path, "--max_train_steps", "30"))
    losses = results["train_losses"]
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert results["eval_accuracy"] >= 0.6  # chance is 1/3
    assert json.loads((tmp_path / "all_results.json").read_text())["eval_accuracy"] == results["eval_accuracy"]
    classifier = pipeline("text-classification", model=str(tmp_path))
    predictions = classifier(["goal goal team match", "market profit shares bank"])
    assert {prediction["label"] for prediction in predictions} <= set(TOPICS)
    assert "AutoModelForSequenceClassification" in json.loads((tmp_path / "config.json").read_text())["auto_map"]

    # Fine-tuning the saved folder reuses its tokenizer and weights.
    train_file, test_file = topic_files
    finetuned = train_text_cct.main(
        [
            "--model_name_or_path",
            str(tmp_path),
            "--train_file",
            str(train_file),
            "--validation_file",
            str(test_file),
            "--output_dir",
            str(tmp_path / "finetuned"),
            "--max_train_steps",
            "2",
            "--learning_rate",
            "1e-9",
        ]
    )
    assert finetuned["eval_accuracy"] == pytest.approx(results["eval_accuracy"])
    assert AutoTokenizer.from_pretrained(tmp_path / "finetuned").get_vocab() == classifier.tokenizer.get_vocab()


def test_resuming_from_a_checkpoint_reproduces_the_straight_run(topic_files, tmp_path):
    # 6 updates per epoch: the checkpoint at 4 is mid-epoch and the resumed run crosses into the next epoch.
    arguments = script_arguments(topic_files, tmp_path, "--max_train_steps", "8", "--checkpointing_steps", "4")
    train_text_cct.main(arguments)
    straight = load_file(tmp_path / "model.safetensors")
    for finished in (tmp_path / "checkpoint-8", tmp_path / "model.safetensors"):
        finished.unlink() if finished.is_file() else shutil.rmtree(finished)
    resumed_results = train_text_cct.main([*arguments, "--resume_from_checkpoint", "latest"])
    assert resumed_results["train_steps"] == 8 and len(resumed_results["train_losses"]) == 4
    resumed = load_file(tmp_path / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], atol=1e-6, rtol=1e-6, msg=name)


# One rank under torchrun: trains, and saves the model this rank holds when it evaluates.
RANK_SCRIPT = """
import json, os, sys, torch
from launch import load_training_script
from hf_compact.metrics import accuracy
evaluate_accuracy = accuracy.evaluate_accuracy
def record_then_evaluate(model, dataloader, accelerator, *args):
    state = {name: value.detach().clone() for name, value in accelerator.unwrap_model(model).state_dict().items()}
    torch.save(state, f"{sys.argv[1]}/rank{accelerator.process_index}.pt")
    return evaluate_accuracy(model, dataloader, accelerator, *args)
accuracy.evaluate_accuracy = record_then_evaluate
results = load_training_script("train_text_cct").main(sys.argv[2:])
with open(f"{sys.argv[1]}/results{os.environ['RANK']}.json", "w") as handle:
    json.dump(results, handle)
"""


@pytest.mark.slow
def test_two_processes_keep_identical_parameters(topic_files, tmp_path):
    """`torchrun --nproc_per_node 2`: each gloo process sees half of every batch; the all-reduced updates keep their
    parameters identical."""
    rank_script = tmp_path / "rank_script.py"
    rank_script.write_text(RANK_SCRIPT)
    arguments = script_arguments(
        topic_files, tmp_path / "run", "--max_train_steps", "6", "--per_device_train_batch_size", "16"
    )
    completed = run_two_processes(rank_script, str(tmp_path), *arguments, timeout=300)
    assert "2 process(es)" in completed.stdout
    results = [json.loads((tmp_path / f"results{rank}.json").read_text()) for rank in (0, 1)]
    assert results[0]["train_steps"] == results[1]["train_steps"] == 6
    assert results[0]["eval_accuracy"] == results[1]["eval_accuracy"]
    assert results[0]["train_losses"] != results[1]["train_losses"]  # each rank trains on its half of the batches
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    saved = load_file(tmp_path / "run" / "model.safetensors")
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name
    assert all(torch.equal(saved[name], rank0[name]) for name in saved)


def test_trainer_example_with_frozen_glove_vectors(topic_files, tmp_path):
    words = sorted({word for topic in TOPICS.values() for word in topic} | set(FILLER))
    generator = torch.Generator().manual_seed(0)
    glove = tmp_path / "vectors.txt"
    glove.write_text(
        "".join(
            f"{word} " + " ".join(f"{v:.4f}" for v in torch.randn(16, generator=generator).tolist()) + "\n"
            for word in words
        )
    )
    train_file, test_file = topic_files
    metrics = finetune_text_cct_trainer.main(
        [
            "--preset",
            "text_cct_2",
            "--config_overrides",
            "hidden_size=16,intermediate_size=32",
            "--word_vectors",
            str(glove),
            "--freeze_word_vectors",
            "--train_file",
            str(train_file),
            "--validation_file",
            str(test_file),
            "--output_dir",
            str(tmp_path / "out"),
            "--per_device_train_batch_size",
            "32",
            "--learning_rate",
            "3e-3",
            "--max_steps",
            "30",
            "--logging_steps",
            "1",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--use_cpu",
            "--disable_tqdm",
            "true",
        ]
    )
    assert metrics["eval_accuracy"] >= 0.6
    model = TextCCTForSequenceClassification.from_pretrained(tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    weight = model.get_input_embeddings().weight
    assert weight.shape[1] == 16 and not weight.requires_grad
    # Saved with its modelling code (loads with trust_remote_code=True where hf-compact is not installed).
    assert (tmp_path / "out" / "modeling_text_cct.py").is_file()
    assert (
        "AutoModelForSequenceClassification" in json.loads((tmp_path / "out" / "config.json").read_text())["auto_map"]
    )
    for line in glove.read_text().splitlines()[:5]:
        word, *values = line.split(" ")
        expected = torch.tensor([float(v) for v in values])
        torch.testing.assert_close(weight[tokenizer.convert_tokens_to_ids(word)], expected)


def test_trainer_lora_saves_the_adapter_and_the_classifier(topic_files, tmp_path):
    train_file, test_file = topic_files
    metrics = finetune_text_cct_trainer.main(
        [
            "--preset", "text_cct_2", "--config_overrides", TINY_MODEL, "--train_file", str(train_file),
            "--validation_file", str(test_file), "--output_dir", str(tmp_path), "--max_steps", "2",
            "--report_to", "none", "--save_strategy", "no", "--use_cpu", "--disable_tqdm", "true",
            "--lora_rank", "2", "--lora_target_modules", "qkv", "fc1",
        ]
    )  # fmt: skip
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    adapter_config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert adapter_config["r"] == 2 and set(adapter_config["target_modules"]) == {"qkv", "fc1"}
    adapter = load_file(tmp_path / "adapter_model.safetensors")
    assert {name.split(".")[-3] for name in adapter if "lora_" in name} == {"qkv", "fc1"}
    assert any("classifier" in name for name in adapter) and not (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize(
    "recipe", sorted((ROOT / "training" / "configs").glob("text_cct_*.yaml")), ids=lambda p: p.name
)
def test_recipes_parse_into_the_flags_of_their_script(recipe):
    if "trainer" in recipe.name:
        model_args, _, data_args, training_args = finetune_text_cct_trainer.parse_args(["--config", str(recipe)])
        preset, dataset_name = model_args.preset, data_args.dataset_name
    else:
        args = train_text_cct.parse_args(["--config", str(recipe)])
        preset, dataset_name = args.preset, args.dataset_name
        overrides = parse_overrides(args.config_overrides)
        assert all(hasattr(TextCCTConfig(), name) for name in overrides)
    assert preset in TEXT_CCT_PRESETS and dataset_name is not None


# ------------------------------------------------------------------------------------------- run engine (issue 13)

from run_engine_checks import (  # noqa: E402
    TOKEN,
    assert_token_nowhere,
    capture_hub_and_trackers,
    run_killed_after_checkpoint,
)


def test_hub_token_reaches_no_file_upload_tracker_or_log(topic_files, tmp_path, monkeypatch, caplog, capfd):
    import logging

    caplog.set_level(logging.DEBUG)
    captured = capture_hub_and_trackers(monkeypatch)
    output_dir = tmp_path / "run"
    train_text_cct.main(script_arguments(
        topic_files, output_dir, "--max_train_steps", "2", "--with_tracking", "--push_to_hub", "--hub_token", TOKEN,
    ))  # fmt: skip
    out, err = capfd.readouterr()
    assert_token_nowhere(captured, output_dir, caplog.text + out + err)
    assert captured["repo_id"] == "someone/run" and "tokenizer.json" in captured["files"]


def test_exact_resume_inside_a_later_epoch_with_uneven_accumulation(topic_files, tmp_path, monkeypatch):
    """4 batches per epoch, accumulation 3: 2 updates per epoch (3 batches, then 1). Killed after checkpoint-3
    (epoch 1, one update into it), the resumed run ends with the straight run's weights."""

    def arguments(output_dir):
        return script_arguments(
            topic_files, output_dir, "--per_device_train_batch_size", "40", "--gradient_accumulation_steps", "3",
            "--max_train_steps", "5", "--checkpointing_steps", "3",
        )  # fmt: skip

    straight = train_text_cct.main(arguments(tmp_path / "straight"))
    run_killed_after_checkpoint(train_text_cct.main, arguments(tmp_path / "resumed"), 3, monkeypatch)
    resumed = train_text_cct.main([*arguments(tmp_path / "resumed"), "--resume_from_checkpoint", "latest"])
    assert resumed["train_losses"] == pytest.approx(straight["train_losses"][3:], abs=1e-6)
    expected, actual = (
        load_file(tmp_path / "straight" / "model.safetensors"),
        load_file(tmp_path / "resumed" / "model.safetensors"),
    )
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


# ------------------------------------------------------------------------------------------- own data (issue 27)


@pytest.fixture(scope="module")
def topic_csv_files(topic_files, tmp_path_factory) -> tuple[Path, Path]:
    """The topic texts as CSV files: datasets reads the string labels as ``large_string``."""
    folder = tmp_path_factory.mktemp("topics_csv")
    paths = []
    for source in topic_files:
        rows = [json.loads(line) for line in source.read_text().splitlines()]
        path = folder / f"{source.stem}.csv"
        path.write_text("text,label\n" + "".join(f"{row['text']},{row['label']}\n" for row in rows))
        paths.append(path)
    return tuple(paths)


def test_csv_files_with_string_labels_train_with_both_scripts(topic_csv_files, tmp_path):
    train_text_cct.main(script_arguments(topic_csv_files, tmp_path / "accelerate", "--max_train_steps", "2"))
    config = json.loads((tmp_path / "accelerate" / "config.json").read_text())
    assert config["id2label"] == {"0": "business", "1": "science", "2": "sports"}
    train_file, test_file = topic_csv_files
    metrics = finetune_text_cct_trainer.main([
        "--preset", "text_cct_2", "--config_overrides", TINY_MODEL, "--train_file", str(train_file),
        "--validation_file", str(test_file), "--output_dir", str(tmp_path / "trainer"), "--max_steps", "1",
        "--per_device_train_batch_size", "8", "--report_to", "none", "--save_strategy", "no", "--use_cpu",
    ])  # fmt: skip
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0


def test_a_missing_train_file_fails_at_once_naming_it(tmp_path):
    missing = tmp_path / "my data" / "train.csv"
    arguments = script_arguments((missing, missing), tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="my data/train.csv', which does not exist"):
        train_text_cct.main(arguments)


def test_a_train_file_on_the_command_line_replaces_the_recipes_dataset():
    recipe = ROOT / "training" / "configs" / "text_cct_4_k2_trec.yaml"
    args = train_text_cct.parse_args(["--config", str(recipe), "--train_file", "mine.csv"])
    assert (args.dataset_name, args.train_file, args.label_column_name) == (None, "mine.csv", "label")
    assert args.preset == "text_cct_4"  # the rest of the recipe stays
    with pytest.raises(SystemExit):  # no prefix matching: --learning is not --learning_rate
        train_text_cct.parse_args(["--config", str(recipe), "--learning", "0.1"])
