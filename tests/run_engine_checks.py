"""Shared checks for the training-script tests: a swapped Hub client, token leak search, a killed run."""

from __future__ import annotations

from pathlib import Path

import pytest
from accelerate import Accelerator

from hf_compact.training_utils import run as run_module

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
