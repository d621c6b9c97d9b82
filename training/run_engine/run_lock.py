"""One launch per run folder: a lock that a second job cannot take, and that dies with the job that held it.

The main process of a launch (rank 0 of all its processes: one lock per run, not per rank) holds an exclusive
``flock`` on ``OUTPUT_DIR/.run.lock`` from :func:`~run_engine.prepare_output_dir` to the end of the
run, and writes its host, process id and start time into the file. The kernel (or the NFS server) drops the lock
when that process ends, however it ends, so the file left behind by a killed job never blocks a resume; a second
job that opens the folder while the first runs is refused at once, with the holder named. A run that ends removes
the file.

Runs started one after the other in one Python process (tests, notebooks) take the lock again freely: the lock
protects a folder from other processes, not from the process that holds it.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import warnings
from pathlib import Path

from hf_compact.utils.run_files import LOCK_FILE

# Run folders locked by this process -> the open lock file (the lock lives as long as the descriptor).
_held_locks: dict[Path, int] = {}


class RunFolderInUseError(RuntimeError):
    """Another job holds the run folder (its lock file names the holder)."""


def acquire_run_lock(output_dir: Path) -> None:
    """Lock ``output_dir`` for this process; call it on the main process only.

    Raises:
        RunFolderInUseError: another process holds the folder; the message names the folder and the holder.
    """
    output_dir = Path(output_dir).resolve()
    if output_dir in _held_locks:
        return
    path = output_dir / LOCK_FILE
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunFolderInUseError(
                    f"--output_dir: {str(output_dir)!r} is in use by another job ({describe_holder(path)}); wait "
                    "for it to end, or pass another --output_dir."
                ) from None
            warnings.warn(
                f"--output_dir: {str(output_dir)!r} is on a file system without file locks ({error.strerror}); "
                "nothing stops a second job from writing into it.",
                stacklevel=2,
            )
            return
        if _is_current_lock_file(descriptor, path):
            break
        os.close(descriptor)  # the holder released and removed the file between our open and flock: try again
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(holder).encode(), 0)
    _held_locks[output_dir] = descriptor


def _is_current_lock_file(descriptor: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def release_run_lock(output_dir: Path) -> None:
    """Release the lock this process holds on ``output_dir`` (nothing when it holds none)."""
    output_dir = Path(output_dir).resolve()
    descriptor = _held_locks.pop(output_dir, None)
    if descriptor is not None:
        (output_dir / LOCK_FILE).unlink(missing_ok=True)  # before the flock drops, so no one locks a removed file
        os.close(descriptor)


def describe_holder(lock_path: Path) -> str:
    """``host H, pid P, started T`` from the lock file (the holder may be writing it: then it is unknown)."""
    try:
        holder = json.loads(lock_path.read_text())
        return f"host {holder['host']}, pid {holder['pid']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder not recorded yet"
