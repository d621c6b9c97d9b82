"""The run lock (issue 27): one launch per run folder; a second job is refused at once, naming the holder; the
lock file of a dead job does not block a resume; a save killed midway leaves nothing behind at the next start."""

import argparse
import json
import os
import socket
import subprocess
import sys

import pytest
from accelerate import Accelerator

from run_engine import RunFolderInUseError, add_run_arguments, prepare_output_dir
from run_engine.run_lock import release_run_lock

# Another job: takes the flock on the folder's lock file, as a launch of the engine does, then waits.
HOLDER = """
import fcntl, json, os, socket, sys
descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(descriptor, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": "now"}).encode())
print("locked", flush=True)
sys.stdin.readline()
"""


def run_flags(output_dir, *flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(["--output_dir", str(output_dir), *flags])


def test_a_second_job_is_refused_naming_the_holder_and_a_dead_holder_blocks_nothing(tmp_path):
    accelerator = Accelerator(cpu=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / ".run.lock")], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"locked\n"
        for flags in ((), ("--resume_from_checkpoint", "latest")):
            with pytest.raises(RunFolderInUseError, match=f"{tmp_path}.* in use by another job") as raised:
                prepare_output_dir(run_flags(tmp_path, *flags), accelerator)
            assert f"host {socket.gethostname()}, pid {holder.pid}" in str(raised.value)
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".run.lock").is_file()  # left by the killed job
    prepare_output_dir(run_flags(tmp_path, "--resume_from_checkpoint", "latest"), accelerator)
    assert json.loads((tmp_path / ".run.lock").read_text())["pid"] == os.getpid()
    prepare_output_dir(run_flags(tmp_path, "--resume_from_checkpoint", "latest"), accelerator)  # same process: fine
    release_run_lock(tmp_path)
    assert os.listdir(tmp_path) == []


def test_staging_folders_of_a_killed_save_are_removed_at_start(tmp_path):
    (tmp_path / ".checkpoint-5.partial").mkdir()
    (tmp_path / ".checkpoint-5.partial" / "model.safetensors").write_bytes(b"half")
    prepare_output_dir(run_flags(tmp_path, "--resume_from_checkpoint", "latest"), Accelerator(cpu=True))
    release_run_lock(tmp_path)
    assert os.listdir(tmp_path) == []
