"""Run a script in a fresh process where `import hf_compact` fails, as for a user who never installed the package."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

NO_HF_COMPACT = textwrap.dedent(
    r"""
    import importlib.abc, json, re, sys

    class NoHfCompact(importlib.abc.MetaPathFinder):
        # The venv has hf_compact installed (editable); this makes the process a user who does not have it.
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] == "hf_compact":
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, NoHfCompact())
    try:
        import hf_compact
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("hf_compact is importable")
    """
)
"""The opening of every such script: it makes hf_compact unimportable and checks that it is."""


def run_without_hf_compact(script: str, folder: Path) -> dict:
    """Runs `script` (which starts with `NO_HF_COMPACT`) in a fresh process in `folder`, offline, with its own
    module cache; returns the JSON it prints last."""
    env = {**os.environ, "HF_HOME": str(folder / "hf_home"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
