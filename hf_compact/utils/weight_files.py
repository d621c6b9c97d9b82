"""Find pretrained weight files in a local folder or a Hugging Face Hub repository, and read them."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from safetensors.torch import load_file


def resolve_weight_file(
    name_or_path: str | os.PathLike, filename: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Local path of a weight file given as a file, a folder + ``filename``, or a Hub repo id + ``filename``.

    Args:
        name_or_path: a file, a local folder holding ``filename``, or a Hub model repo id (``"org/name"``),
            downloaded with ``huggingface_hub.hf_hub_download`` (so ``HF_HUB_OFFLINE`` and the cache apply).
        filename: file inside the folder or repository; not needed when ``name_or_path`` is a file.
        cache_dir: Hub cache folder (default: the standard Hugging Face cache).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    if filename is None:
        raise ValueError(
            f"filename: expected the name of a file inside {str(name_or_path)!r} (a folder or Hub repo id), got None."
        )
    if path.is_dir():
        if not (path / filename).is_file():
            raise FileNotFoundError(f"name_or_path: expected {path / filename} to exist, but it does not.")
        return path / filename
    return Path(hf_hub_download(repo_id=str(name_or_path), filename=filename, cache_dir=cache_dir))


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file or a pickled ``torch.save`` state dict (tensors only) onto the CPU."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(path)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise ValueError(f"path: expected {path} to hold a state dict, got a {type(state_dict).__name__}.")
    return state_dict
