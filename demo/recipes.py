"""Run a training recipe of ``training/`` with its command line, inside this process, and read its results."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

TRAINING_DIR = Path(__file__).resolve().parents[1] / "training"
RESULTS_FILE = "all_results.json"


def run_recipe(script: str, flags: list[str]) -> dict:
    """``python training/<script> <flags>``, run in this already-warm process (its imports are reused), and the run
    folder's ``all_results.json``.

    Args:
        script: file name in ``training/``, e.g. ``"train_dit.py"``.
        flags: its command-line flags; must include ``--output_dir``.
    """
    if "--output_dir" not in flags:
        raise ValueError(f"flags: expected --output_dir among the flags of {script}, got {flags}.")
    output_dir = Path(flags[flags.index("--output_dir") + 1])
    path = TRAINING_DIR / script
    if str(TRAINING_DIR) not in sys.path:  # as `python training/<script>` puts it first: the scripts' run engine
        sys.path.insert(0, str(TRAINING_DIR))
    saved_argv = sys.argv
    sys.argv = [str(path), *flags]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved_argv
    return json.loads((output_dir / RESULTS_FILE).read_text())
