"""Checkpoint and flag helpers shared by the training scripts."""

import argparse
import json
import os

import pytest
import torch
from accelerate import Accelerator

from hf_compact.training_utils import (
    find_latest_checkpoint,
    load_checkpoint,
    parse_args_with_config,
    resolve_resume_checkpoint,
    save_checkpoint,
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--num_train_epochs", type=int, default=1)
    return parser


def test_yaml_config_sets_defaults_and_command_line_wins(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 0.0005\nnum-train-epochs: 300\n")
    args = parse_args_with_config(make_parser(), ["--config", str(recipe), "--num_train_epochs", "5"])
    assert args.learning_rate == 0.0005
    assert args.num_train_epochs == 5


def test_yaml_config_rejects_unknown_keys(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        parse_args_with_config(make_parser(), ["--config", str(recipe)])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--config"):
        parse_args_with_config(make_parser(), ["--config", str(tmp_path / "absent.yaml")])


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    saved_weight = model.weight.detach().clone()

    path = save_checkpoint(accelerator, tmp_path, step=7, extra_state={"epoch": 2})
    assert path.name == "checkpoint-7"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "staging folder left behind"

    with torch.no_grad():
        model.weight.zero_()
    state = load_checkpoint(accelerator, resolve_resume_checkpoint("latest", tmp_path))
    assert state == {"step": 7, "epoch": 2}
    torch.testing.assert_close(model.weight, saved_weight, rtol=0, atol=0)
    assert optimizer.state_dict()["state"][0]["step"].item() == 1


def test_incomplete_checkpoints_are_never_picked_and_limit_prunes_oldest(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    for step in (1, 2, 3):
        save_checkpoint(accelerator, tmp_path, step=step, total_limit=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-3"]

    # A crash while writing step 4 leaves a partial folder and maybe an unmarked one: neither is used.
    (tmp_path / ".checkpoint-4.partial").mkdir()
    (tmp_path / "checkpoint-5").mkdir()
    assert find_latest_checkpoint(tmp_path).name == "checkpoint-3"
    assert json.loads((tmp_path / "checkpoint-3" / "training_state.json").read_text())["step"] == 3
    del model


def test_resume_arguments(tmp_path):
    assert resolve_resume_checkpoint(None, tmp_path) is None
    assert resolve_resume_checkpoint("latest", tmp_path) is None
    with pytest.raises(FileNotFoundError, match="--resume_from_checkpoint"):
        resolve_resume_checkpoint(str(tmp_path / "checkpoint-9"), tmp_path)


def test_yaml_value_satisfies_a_required_flag(tmp_path):
    parser = make_parser()
    parser.add_argument("--output_dir", required=True)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"output_dir: {tmp_path / 'run'}\n")
    assert parse_args_with_config(parser, ["--config", str(recipe)]).output_dir == str(tmp_path / "run")
    with pytest.raises(SystemExit):
        parse_args_with_config(make_parser_with_required_output(), [])


def make_parser_with_required_output() -> argparse.ArgumentParser:
    parser = make_parser()
    parser.add_argument("--output_dir", required=True)
    return parser


def test_redact_secrets_drops_credential_keys_at_any_depth_and_hub_tokens_in_values():
    from hf_compact.training_utils import redact_secrets

    token = "hf_" + "a1B2c3D4e5" * 3
    config = {
        "hub_token": token, "wandb_api_key": "k", "db-password": "p", "clientSecret": "s", "tokenizer_name": "bert",
        "learning_rate": 0.1, "nested": {"access_token": "t", "note": f"pushed with {token}"}, "keyframes": [1, 2],
    }  # fmt: skip
    redacted = redact_secrets(config)
    assert redacted == {
        "tokenizer_name": "bert", "learning_rate": 0.1, "nested": {"note": "pushed with <redacted>"},
        "keyframes": [1, 2],
    }  # fmt: skip
    assert config["hub_token"] == token  # the input is not modified


def test_save_for_hub_never_writes_the_token(tmp_path):
    from hf_compact import CCTConfig, CCTForImageClassification
    from hf_compact.hub.push import save_for_hub

    token = "hf_" + "Z9y8X7w6V5" * 3
    model = CCTForImageClassification(
        CCTConfig.from_preset("cct_2_3x2_32", image_size=16, hidden_size=16, intermediate_size=16, num_hidden_layers=1)
    )
    save_for_hub(model, tmp_path, "someone/cct", training_config={"hub_token": token, "learning_rate": 0.1})
    assert json.loads((tmp_path / "training_config.json").read_text()) == {"learning_rate": 0.1}
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and token.encode() in path.read_bytes()]


def test_updates_per_epoch_follow_accelerate_which_syncs_on_the_last_batch():
    from run_engine import updates_per_epoch

    assert [updates_per_epoch(batches, 2) for batches in (4, 5, 1)] == [2, 3, 1]
    # What Accelerate does: count the syncs of `accumulate` over one epoch of 5 batches.
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = accelerator.prepare(torch.nn.Linear(1, 1))
    dataloader = accelerator.prepare(torch.utils.data.DataLoader(torch.zeros(5, 1), batch_size=1))
    syncs = 0
    for _ in dataloader:
        with accelerator.accumulate(model):
            syncs += accelerator.sync_gradients
    assert syncs == updates_per_epoch(len(dataloader), 2) == 3


def test_output_dir_holding_a_run_is_refused_and_overwrite_clears_it(tmp_path):
    from run_engine import add_run_arguments, check_run_arguments, prepare_output_dir

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    accelerator = Accelerator(cpu=True)
    accelerator.prepare(torch.nn.Linear(1, 1))
    save_checkpoint(accelerator, tmp_path, step=3)
    args = parser.parse_args(["--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--output_dir: .* already holds a run \\(checkpoint-3\\)"):
        prepare_output_dir(args, accelerator)
    assert prepare_output_dir(
        parser.parse_args(["--output_dir", str(tmp_path), "--resume_from_checkpoint", "latest"]), accelerator
    )
    assert (tmp_path / "checkpoint-3").is_dir()
    prepare_output_dir(parser.parse_args(["--output_dir", str(tmp_path), "--overwrite_output_dir"]), accelerator)
    assert os.listdir(tmp_path) == [".run.lock"]  # held by this process until the run ends
    for flags in (
        ["--checkpoints_total_limit", "0"],
        ["--checkpointing_steps", "-1"],
        ["--max_train_seconds", "0"],
    ):
        with pytest.raises(ValueError, match=flags[0]):
            check_run_arguments(parser.parse_args(["--output_dir", "x", *flags]))


def test_a_repo_id_the_hub_refuses_fails_before_training():
    from run_engine import add_run_arguments, check_run_arguments

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    with pytest.raises(ValueError, match="--hub_model_id: expected a Hub repository id .* got 'me/a/b'"):
        check_run_arguments(parser.parse_args(["--output_dir", "x", "--push_to_hub", "--hub_model_id", "me/a/b"]))
    with pytest.raises(ValueError, match="--hub_model_id: .* got 'run 1'"):  # the default: the folder's name
        check_run_arguments(parser.parse_args(["--output_dir", "runs/run 1", "--push_to_hub"]))
    check_run_arguments(parser.parse_args(["--output_dir", "runs/run 1"]))  # no upload, any folder name
    check_run_arguments(parser.parse_args(["--output_dir", "runs/run-1", "--push_to_hub"]))
    check_run_arguments(parser.parse_args(["--output_dir", "x", "--push_to_hub", "--hub_model_id", "me/cct"]))


def test_training_run_stops_on_the_step_or_time_budget_and_writes_the_end_files(tmp_path):
    from accelerate.utils import DataLoaderConfiguration

    from run_engine import TrainingRun, add_run_arguments

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)

    def updates_done(*flags: str) -> tuple[int, int]:
        args = parser.parse_args(
            ["--output_dir", str(tmp_path / flags[-1]), "--gradient_accumulation_steps", "2", *flags[:-1]]
        )
        accelerator = Accelerator(
            cpu=True,
            gradient_accumulation_steps=2,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        model = torch.nn.Linear(1, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = torch.utils.data.DataLoader(torch.ones(5, 1), batch_size=1, shuffle=True)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        run = TrainingRun(accelerator, args, loader, max_train_steps=7)
        batches = 0
        for batch in run:
            batches += 1
            with accelerator.accumulate(model):
                accelerator.backward(model(batch).sum())
                optimizer.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                run.update_done()
        run.save_final_checkpoint()
        run.finish({"updates": run.completed_steps})
        return run.completed_steps, batches

    # 5 batches per epoch, 3 updates each (2 + 2 + 1 batches): 7 updates take 2 epochs + 2 updates = 12 batches.
    assert updates_done("steps") == (7, 12)
    assert json.loads((tmp_path / "steps" / "all_results.json").read_text()) == {"updates": 7}
    assert json.loads((tmp_path / "steps" / "training_config.json").read_text())["max_train_seconds"] is None
    assert sorted(os.listdir(tmp_path / "steps")) == [
        "all_results.json",
        "checkpoint-7",
        "training_config.json",
    ]
    assert updates_done("--max_train_seconds", "1e-9", "seconds") == (1, 2)


def test_end_of_run_files_on_a_full_disk_name_the_path_and_enospc(tmp_path, monkeypatch):
    import errno

    from run_engine.run import write_json

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", disk_full)
    with pytest.raises(OSError, match=r"ENOSPC.*all_results\.json") as raised:
        write_json(tmp_path / "all_results.json", {"a": 1})
    assert raised.value.errno == errno.ENOSPC and os.listdir(tmp_path) == []
