"""Convert a checkpoint of the authors' released ViTok-v1 code into an :class:`AutoencoderViTok` folder.

The released code (philippe-eecs/vitok, ``pytorch_vitok_old/``) saves ``torch.save({"model": ..., "ema": ...,
"optimizer": ..., ...})``; no official v1 weights were ever published, so this serves users' own checkpoints.
Converted models use the released code's numerics: ``mlp_type="geglu"`` and ``rope_type="1d"``. Checkpoints of
the released *video* configs also hold fixed sin-cos position tables (``posemb``, ``dec_posemb``), which this
model does not have; they are reported as unexpected keys instead of being dropped silently.

Usage::

    python -m hf_compact.vitok.convert_vitok_original --checkpoint ckpt.pt --preset S-B/16 --output vitok-s-b-16
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import torch

from ..utils import check_state_dict, rename_keys, strip_prefixes
from .autoencoder_vitok import AutoencoderViTok

# The released code's choices for what the paper (Hansen-Estruch et al. 2025) leaves open: the MLP of the blocks
# and the RoPE layout (philippe-eecs/vitok, pytorch_vitok_old/).
RELEASED_CODE_OPTIONS = {"mlp_type": "geglu", "rope_type": "1d"}

# Official key (regex) -> AutoencoderViTok key.
ORIGINAL_TO_DIFFUSERS = (
    (r"^tubelet_embed\.proj\.", "encoder.patch_embed.proj."),
    (r"^(encoder|decoder)\.blocks\.", r"\1.transformer.blocks."),
    (r"^(encoder|decoder)\.norm\.", r"\1.transformer.norm."),
    (r"\.mlp\.fc1\.", ".mlp.gate_proj."),
    (r"\.mlp\.fc2\.", ".mlp.value_proj."),
    (r"\.mlp\.fc3\.", ".mlp.out_proj."),
    (r"^encoder_to_code\.", "encoder.to_latent."),
    (r"^code_to_decoder\.", "decoder.latent_proj."),
    (r"^tubelet_decode\.proj\.", "decoder.to_pixels.proj."),
)


def extract_model_state_dict(checkpoint: Mapping, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """Returns the model weights of a released-code checkpoint, without ``module.`` / ``_orig_mod.`` prefixes.

    Args:
        checkpoint: the ``torch.load`` result: a dict with ``"model"`` (and maybe ``"ema"``) or a bare state dict.
        use_ema: take the ``"ema"`` weights instead of ``"model"``.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"checkpoint must be a dict, got {type(checkpoint).__name__}")
    key = "ema" if use_ema else "model"
    if key in checkpoint:
        state_dict = checkpoint[key]
    elif use_ema:
        raise ValueError(f"checkpoint has no 'ema' weights; found keys {sorted(checkpoint)[:10]}")
    else:
        state_dict = checkpoint
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(
            f"checkpoint[{key!r}] must be a state dict of tensors; expected a torch.save dict with 'model'/'ema' "
            "state dicts or a bare state dict"
        )
    return strip_prefixes(state_dict, ("module.", "_orig_mod.", "ema_model.", "model."))


def convert_original_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: AutoencoderViTok, source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Renames official v1 keys to :class:`AutoencoderViTok` keys and checks them against ``model``.

    A pure function of the state dict (``model`` only supplies the expected keys and shapes).

    Raises:
        ValueError: naming missing, unexpected or mis-shaped keys.
    """
    converted = rename_keys(state_dict, ORIGINAL_TO_DIFFUSERS)
    check_state_dict(converted, model, source)
    return converted


def convert_vitok_original(
    checkpoint: Mapping, preset: str, use_ema: bool = False, **config_overrides
) -> AutoencoderViTok:
    """Builds an :class:`AutoencoderViTok` (released-code options) from a loaded v1 checkpoint dict."""
    original_state_dict = extract_model_state_dict(checkpoint, use_ema)
    model = AutoencoderViTok.from_preset(preset, **{**RELEASED_CODE_OPTIONS, **config_overrides})
    state_dict = convert_original_state_dict(original_state_dict, model, source=f"checkpoint for preset {preset!r}")
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="torch.save file written by the released v1 code")
    parser.add_argument("--preset", required=True, help="AutoencoderViTok preset, e.g. S-B/16")
    parser.add_argument("--output", required=True, help="folder for save_pretrained")
    parser.add_argument("--use-ema", action="store_true", help="convert the EMA weights")
    args = parser.parse_args(argv)
    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = convert_vitok_original(checkpoint, args.preset, use_ema=args.use_ema)
    model.save_pretrained(args.output)
    print(f"saved AutoencoderViTok ({args.preset}) to {args.output}")


if __name__ == "__main__":
    main()
