"""Shared checks for the training-script tests: a swapped Hub client, token leak search, a killed run, and a tiny
script on the engine."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from hf_compact.training_utils import build_accelerator, parse_args_with_config

from run_engine import TrainingRun, add_run_arguments, check_run_arguments, prepare_output_dir
from run_engine import run as run_module

TOKEN = "hf_" + "Sup3rS3cretT0ken" * 2


def capture_hub_and_trackers(monkeypatch) -> dict:
    """Swap ``HfApi``'s network calls and ``Accelerator.init_trackers``; returns what they received."""
    from huggingface_hub import HfApi, RepoUrl

    captured = {"files": {}, "repo_id": None, "tracker_configs": []}

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        captured["repo_id"] = repo_id
        for path in Path(folder_path).rglob("*"):
            if path.is_file():
                captured["files"][str(path.relative_to(folder_path))] = path.read_bytes()

    def create_repo(self, repo_id, **kwargs):  # a bare name goes to the token owner's namespace, as on the Hub
        return RepoUrl(f"https://huggingface.co/{repo_id if '/' in repo_id else 'someone/' + repo_id}")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(
        Accelerator,
        "init_trackers",
        lambda self, project_name, config=None, **kwargs: captured["tracker_configs"].append(config),
    )
    return captured


def assert_token_nowhere(captured: dict, output_dir: Path, logs: str) -> None:
    """The token is in no uploaded file, no file of the run folder, no tracker config and no log line."""
    assert captured["files"], "nothing was uploaded"
    assert "training_config.json" in captured["files"] and "README.md" in captured["files"]
    leaked = [name for name, content in captured["files"].items() if TOKEN.encode() in content]
    assert not leaked, f"token uploaded in {leaked}"
    local = [str(path) for path in output_dir.rglob("*") if path.is_file() and TOKEN.encode() in path.read_bytes()]
    assert not local, f"token written to {local}"
    assert captured["tracker_configs"] and all(TOKEN not in str(config) for config in captured["tracker_configs"])
    assert "hub_token" not in captured["tracker_configs"][0]
    assert TOKEN not in logs


class Killed(Exception):
    pass


def run_killed_after_checkpoint(main, argv: list[str], step: int, monkeypatch) -> None:
    """Run ``main(argv)`` until the checkpoint of ``step`` is committed, then kill it."""
    save_checkpoint = run_module.save_checkpoint

    def save_then_die(accelerator, output_dir, completed_steps, *args, **kwargs):
        path = save_checkpoint(accelerator, output_dir, completed_steps, *args, **kwargs)
        if completed_steps == step:
            raise Killed
        return path

    with monkeypatch.context() as patch:
        patch.setattr(run_module, "save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            main(argv)


def tiny_run(output_dir, *flags: str, on_step=None) -> list[float]:
    """A whole training script on the engine: 8 SGD updates of a linear model under a linear-decay ``LambdaLR``,
    checkpoints every 4; ``on_step(run)`` is called after each optimizer step, before ``run.update_done``. Returns
    the learning rate of each update this launch made."""
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--per_device_train_batch_size", type=int, default=2)
    args = parse_args_with_config(parser, ["--output_dir", str(output_dir), "--checkpointing_steps", "4", *flags])
    check_run_arguments(args)
    accelerator = build_accelerator(args, output_dir)
    prepare_output_dir(args, accelerator)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 16)
    loader = torch.utils.data.DataLoader(torch.randn(16, 2), batch_size=args.per_device_train_batch_size, shuffle=True)
    model, optimizer, scheduler, loader = accelerator.prepare(model, optimizer, scheduler, loader)
    run = TrainingRun(accelerator, args, loader, max_train_steps=args.max_train_steps or 8)
    run.resume()
    learning_rates = []
    for batch in run:
        with accelerator.accumulate(model):
            loss = model(batch).pow(2).mean()
            accelerator.backward(loss)
            learning_rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        if on_step is not None:
            on_step(run)
        run.update_done(loss.item())
    run.save_final_checkpoint()
    run.finish(run.build_results({"loss": 0.0}))
    return learning_rates
