"""Checkpoints never unpickle code, are durable (fsync, one commit rename, no hidden copy) and rotate safely."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from hf_compact.training_utils import (
    UnsafeCheckpointError,
    checkpointing,
    find_latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


class WritesMarker:
    """A pickle payload: unpickling it creates ``path`` (stands in for arbitrary code)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def tiny_training_state(tmp_path: Path):
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    ema = EMAModel(model.parameters(), decay=0.5)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    ema.step(model.parameters())
    return accelerator, model, ema


def test_extra_state_round_trips_as_safetensors_and_json(tmp_path):
    accelerator, model, ema = tiny_training_state(tmp_path)
    path = save_checkpoint(accelerator, tmp_path, step=3, stateful={"ema": ema})
    assert {"ema.safetensors", "ema.json", "model.safetensors", "training_state.json"} <= set(os.listdir(path))
    assert not list(path.glob("custom_checkpoint_*"))
    saved_shadow = [parameter.clone() for parameter in ema.shadow_params]

    restored = EMAModel(torch.nn.Linear(3, 2).parameters(), decay=0.9)
    state = load_checkpoint(accelerator, path, stateful={"ema": restored})
    assert state["step"] == 3
    assert restored.decay == 0.5 and restored.optimization_step == ema.optimization_step == 1
    for restored_parameter, saved in zip(restored.shadow_params, saved_shadow):
        torch.testing.assert_close(restored_parameter, saved, rtol=0, atol=0)


@pytest.mark.parametrize("payload_format", ["torch.save", "pickle"])
def test_planted_pickles_in_every_file_never_run(tmp_path, payload_format):
    accelerator, model, ema = tiny_training_state(tmp_path)
    checkpoint = save_checkpoint(accelerator, tmp_path / "run", step=1, stateful={"ema": ema})
    names = sorted(os.listdir(checkpoint)) + ["custom_checkpoint_0.pkl"]
    assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl"} <= set(names)
    marker = tmp_path / "code-ran"
    for name in names:
        if name == "training_state.json":
            continue
        planted = tmp_path / f"planted-{name}"
        checkpointing.shutil.copytree(checkpoint, planted)
        with open(planted / name, "wb") as handle:
            if payload_format == "torch.save":
                torch.save(WritesMarker(marker), handle)
            else:
                pickle.dump(WritesMarker(marker), handle)
        with pytest.raises(UnsafeCheckpointError, match=f"refusing {planted / name}"):
            load_checkpoint(accelerator, planted, stateful={"ema": ema})
        assert not marker.exists(), f"unpickling {name} ran code"


def test_random_state_failure_is_reported(tmp_path):
    accelerator, _, _ = tiny_training_state(tmp_path)
    checkpoint = save_checkpoint(accelerator, tmp_path, step=1)
    torch.save({"not": torch.zeros(1)}, checkpoint / "random_states_0.pkl")  # loads safely, but holds no states
    with pytest.raises(RuntimeError, match="could not restore the random states from .*random_states_0.pkl"):
        load_checkpoint(accelerator, checkpoint)


def test_commit_is_fsynced_then_renamed_and_resaving_never_hides_the_only_copy(tmp_path, monkeypatch):
    accelerator, _, _ = tiny_training_state(tmp_path)
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or real_fsync(fd)
    )
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", str(a), str(b))) or real_replace(a, b))
    path = save_checkpoint(accelerator, tmp_path, step=5)
    staging = str(tmp_path / ".checkpoint-5.partial")
    commit = events.index(("replace", staging, str(path)))
    synced = {target for kind, target, *_ in events[:commit] if kind == "fsync"}
    assert {str(Path(staging) / name) for name in os.listdir(path)} | {staging} <= synced
    assert ("fsync", str(tmp_path)) in events[commit:]

    # A crash right after the old copy was renamed away: the old copy is still found, complete.
    def crash_on_commit(source, target):
        if str(source).endswith(".partial"):
            raise KeyboardInterrupt("power loss")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(accelerator, tmp_path, step=5)
    assert find_latest_checkpoint(tmp_path) == tmp_path / "checkpoint-5.previous"
    assert not (tmp_path / ".checkpoint-5.partial").exists()
    monkeypatch.setattr(os, "replace", real_replace)
    assert load_checkpoint(accelerator, find_latest_checkpoint(tmp_path))["step"] == 5
    assert save_checkpoint(accelerator, tmp_path, step=5) == path
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-5"]


def test_full_disk_names_the_path_and_enospc_and_leaves_no_partial_folder(tmp_path, monkeypatch):
    accelerator, _, _ = tiny_training_state(tmp_path)

    def disk_full(self, output_dir=None, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Accelerator, "save_state", disk_full)
    with pytest.raises(OSError, match=r"ENOSPC.*checkpoint-2\.partial") as raised:
        save_checkpoint(accelerator, tmp_path, step=2)
    assert raised.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


def test_rotation_keeps_the_new_checkpoint_and_limits_must_be_positive(tmp_path):
    accelerator, _, _ = tiny_training_state(tmp_path)
    for step in (2, 4, 8):
        save_checkpoint(accelerator, tmp_path, step=step)
    # Resumed from step 4, the run abandons checkpoint-8: it is set aside, so the new step 6 is kept.
    moved = checkpointing.set_aside_later_checkpoints(tmp_path, 4)
    assert moved == [tmp_path / "abandoned-checkpoints" / "checkpoint-8"]
    save_checkpoint(accelerator, tmp_path, step=6, total_limit=1)
    assert sorted(path.name for path in tmp_path.glob("checkpoint-*")) == ["checkpoint-6"]
    assert find_latest_checkpoint(tmp_path).name == "checkpoint-6"
    for limit in (0, -1):
        with pytest.raises(ValueError, match="--checkpoints_total_limit: expected at least 1"):
            save_checkpoint(accelerator, tmp_path, step=7, total_limit=limit)
    assert sorted(path.name for path in tmp_path.glob("checkpoint-*")) == ["checkpoint-6"]


def test_rotation_removes_a_symlinked_checkpoint_as_a_link_and_keeps_its_target(tmp_path):
    accelerator, _, _ = tiny_training_state(tmp_path)
    run = tmp_path / "run"
    for step in (1, 2):
        save_checkpoint(accelerator, run, step=step)
    elsewhere = tmp_path / "other-disk" / "checkpoint-1"
    elsewhere.parent.mkdir()
    os.replace(run / "checkpoint-1", elsewhere)
    (run / "checkpoint-1").symlink_to(elsewhere, target_is_directory=True)
    save_checkpoint(accelerator, run, step=3, total_limit=2)
    assert sorted(os.listdir(run)) == ["checkpoint-2", "checkpoint-3"]
    assert (elsewhere / "training_state.json").is_file()


def test_a_full_disk_inside_safetensors_names_the_path_and_enospc(tmp_path, monkeypatch):
    from accelerate.utils import other
    from safetensors import SafetensorError

    accelerator, _, _ = tiny_training_state(tmp_path)

    def disk_full(tensors, filename, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(other, "safe_save_file", disk_full)
    with pytest.raises(OSError, match=r"ENOSPC.*checkpoint-2\.partial") as raised:
        save_checkpoint(accelerator, tmp_path, step=2)
    assert raised.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []
