"""Resume keeps its word (issue 27): a resume that would change the optimisation or the data order is refused,
naming each flag; with ``--allow_changed_flags`` the new values take effect; ``training_config.json`` lists the
run's segments; re-resuming a finished run changes none of its files."""

import json

import pytest
from run_engine_checks import tiny_run


def test_changed_flags_are_refused_naming_each_and_nothing_moves(tmp_path):
    tiny_run(tmp_path)
    results = (tmp_path / "all_results.json").read_bytes()
    middle = str(tmp_path / "checkpoint-4")
    with pytest.raises(ValueError) as raised:
        tiny_run(tmp_path, "--resume_from_checkpoint", middle, "--learning_rate", "0.5", "--seed", "7",
                 "--per_device_train_batch_size", "4", "--max_train_steps", "8")  # fmt: skip
    message = str(raised.value)
    for change in ("--learning_rate 0.1 -> 0.5", "--seed 42 -> 7", "--per_device_train_batch_size 2 -> 4",
                   "--max_train_steps None -> 8", "--allow_changed_flags"):  # fmt: skip
        assert change in message, message
    assert (tmp_path / "checkpoint-8").is_dir() and (tmp_path / "all_results.json").read_bytes() == results


def test_allowed_changes_take_effect_and_the_history_lists_each_segment(tmp_path):
    straight_at_new_lr = tiny_run(tmp_path / "straight", "--learning_rate", "0.5")
    tiny_run(tmp_path / "run")
    resumed = tiny_run(tmp_path / "run", "--resume_from_checkpoint", str(tmp_path / "run" / "checkpoint-4"),
                       "--learning_rate", "0.5", "--allow_changed_flags")  # fmt: skip
    assert resumed == pytest.approx(straight_at_new_lr[4:])  # not 0.1 x the schedule: the checkpoint's lr
    config = json.loads((tmp_path / "run" / "training_config.json").read_text())
    assert config["learning_rate"] == 0.5 and config["allow_changed_flags"] is True
    first, second = config["run_history"]
    assert first["steps"] == [0, 4] and first["flags"]["learning_rate"] == 0.1 and first["num_processes"] == 1
    assert second == {"steps": [4, 8], "num_processes": 1, "flags": {}}
    results = json.loads((tmp_path / "run" / "all_results.json").read_text())
    assert results["train_steps"] == 8 and results["first_train_loss"] is not None  # the run's first update


def test_resuming_a_finished_run_changes_none_of_its_files(tmp_path):
    tiny_run(tmp_path)
    files = {name: (tmp_path / name).read_bytes() for name in ("all_results.json", "training_config.json")}
    assert json.loads(files["all_results.json"])["train_loss"] is not None
    assert tiny_run(tmp_path, "--resume_from_checkpoint", "latest") == []
    assert {name: (tmp_path / name).read_bytes() for name in files} == files
