"""hf_compact.utils: the state-dict checker, key renaming, weight files, frame folding and derived seeds."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from hf_compact.utils import (
    check_state_dict,
    derive_seed,
    fold_frames_into_batch,
    load_state_dict_file,
    rename_keys,
    resolve_weight_file,
    strip_prefixes,
)


def test_check_state_dict_accepts_an_exact_fit_and_names_every_kind_of_mismatch():
    module = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    state_dict = module.state_dict()
    check_state_dict(state_dict, module, "ok")  # exact keys and shapes: no error
    check_state_dict(state_dict, {key: value.shape for key, value in state_dict.items()}, "ok")

    broken = {**state_dict, "2.weight": torch.zeros(1), "0.bias": torch.zeros(5)}
    del broken["1.bias"]
    with pytest.raises(ValueError) as error:
        check_state_dict(broken, module, "checkpoint 'x.pt'")
    assert str(error.value) == (
        "checkpoint 'x.pt' does not fit Sequential; missing keys: 1.bias; unexpected keys: 2.weight; "
        "mis-shaped keys: 0.bias: expected (4,), got (5,)."
    )
    with pytest.raises(ValueError, match="^x does not fit the encoder; missing keys: 1.bias"):
        check_state_dict(broken, dict(module.state_dict()), "x", target="the encoder")
    with pytest.raises(ValueError, match=r"^x does not fit the model; missing keys: 1\.bias"):
        check_state_dict(broken, {key: value.shape for key, value in module.state_dict().items()}, "x")


def test_check_state_dict_shortens_long_key_lists():
    expected = {f"layer{index:02d}.weight": (1,) for index in range(20)}
    with pytest.raises(ValueError) as error:
        check_state_dict({}, expected, "empty")
    message = str(error.value)
    assert "layer07.weight, ... (20 in all)." in message and "layer08" not in message


def test_rename_keys_applies_rules_in_order_and_strip_prefixes_repeats():
    tensor = torch.zeros(1)
    renamed = rename_keys({"blocks.0.fc1.weight": tensor}, [(r"^blocks\.", "layers."), (r"\.fc1\.", ".up.")])
    assert list(renamed) == ["layers.0.up.weight"] and renamed["layers.0.up.weight"] is tensor
    stripped = strip_prefixes({"module._orig_mod.module.w": tensor, "w2": tensor}, ("module.", "_orig_mod."))
    assert list(stripped) == ["w", "w2"]


def test_weight_files_from_a_file_or_a_folder(tmp_path):
    weights = {"w": torch.arange(3.0)}
    save_file(weights, tmp_path / "w.safetensors")
    torch.save(weights, tmp_path / "w.pt")
    assert resolve_weight_file(tmp_path / "w.pt") == tmp_path / "w.pt"
    assert resolve_weight_file(tmp_path, "w.safetensors") == tmp_path / "w.safetensors"
    for name in ("w.safetensors", "w.pt"):
        torch.testing.assert_close(load_state_dict_file(tmp_path / name)["w"], weights["w"])
    with pytest.raises(FileNotFoundError, match="other.pt to exist"):
        resolve_weight_file(tmp_path, "other.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="to hold a state dict, got a list"):
        load_state_dict_file(tmp_path / "list.pt")


def test_fold_frames_into_batch():
    videos = torch.randn(2, 3, 4, 5, 6)
    frames = fold_frames_into_batch(videos)
    assert frames.shape == (8, 3, 5, 6)
    torch.testing.assert_close(frames[1 * 4 + 2], videos[1, :, 2])  # video 1, frame 2
    images = torch.randn(2, 3, 5, 6)
    assert fold_frames_into_batch(images) is images
    with pytest.raises(ValueError, match=r"pixels: expected images .* got shape \(3, 5, 6\)"):
        fold_frames_into_batch(images[0])


def test_derive_seed_is_deterministic_32_bit_and_separates_nearby_keys():
    seeds = {derive_seed(0, epoch, index) for epoch in range(4) for index in range(64)}
    assert len(seeds) == 4 * 64 and all(0 <= seed < 2**32 for seed in seeds)
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2) != derive_seed(0, 2, 1)
