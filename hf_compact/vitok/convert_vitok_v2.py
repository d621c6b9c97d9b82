"""Load the published ViTok-v2 weights (``philippehansen/ViTok-v2-*``) into :class:`AutoencoderViTok`.

Each Hub repo holds ``encoder.safetensors`` and ``decoder.safetensors`` with the official module's key names
(vitok-v2.md §6). :func:`load_vitok_v2` reads them from a local folder or the Hub, renames the keys, checks every
shape and returns an ``AutoencoderViTok`` configured as ViTok-v2 (parallel RMSNorm blocks with LayerScale,
qk-norm, 2-D RoPE, fused SwiGLU, linear patch embedding, deterministic latent).

Usage::

    python -m hf_compact.vitok.convert_vitok_v2 --source philippehansen/ViTok-v2-350M-f16x16 --output vitok-v2-350m
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..utils import check_state_dict, rename_keys, strip_prefixes
from .autoencoder_vitok import AutoencoderViTok
from .presets import V2_VARIANTS, VITOK_PRESETS, v2_config_from_variant

COMPONENTS = ("encoder", "decoder")

# Official key (regex) -> AutoencoderViTok key. The raw-training spelling ``encoder.N.`` is accepted as well.
V2_TO_DIFFUSERS = (
    (r"^(encoder|decoder)\.(\d+)\.", r"\1_blocks.\2."),
    (r"^patch_embed\.", "encoder.patch_embed.proj."),
    (r"^(encoder|decoder)_blocks\.", r"\1.transformer.blocks."),
    (r"\.attn\.qkv_proj\.", ".attn.qkv."),
    (r"\.attn\.out_proj\.", ".attn.proj."),
    (r"\.ffn\.fc1\.", ".mlp.in_proj."),
    (r"\.ffn\.fc2\.", ".mlp.out_proj."),
    (r"^to_code\.", "encoder.to_latent."),
    (r"^decoder_embed\.", "decoder.latent_proj."),
    (r"^to_pixels\.", "decoder.to_pixels.proj."),
)

_REPO_NAME = re.compile(r"ViTok-v2-(?P<size>[0-9]+[MB])-(?P<stride>f[0-9]+x[0-9]+)", re.IGNORECASE)
# A name as the official registry spells it ("350M-f16x16"), optionally with our "v2-" or the repos' "ViTok-v2-".
_REGISTRY_NAME = re.compile(r"(?:ViTok-)?(?:v2-)?(?P<size>[0-9]+[MB])-(?P<stride>f[0-9]+x[0-9]+)", re.IGNORECASE)
# Organisation of the published weights on the Hub (philippe-eecs/vitok's registry).
HUB_ORGANISATION = "philippehansen"


def _preset_name(name: str) -> str | None:
    """``"350M-f16x16"``, ``"v2-350m-f16x16"`` or ``"ViTok-v2-350M-f16x16"`` -> ``"v2-350M-f16x16"``; else None."""
    match = _REGISTRY_NAME.fullmatch(name)
    preset = f"v2-{match['size'].upper()}-{match['stride'].lower()}" if match else None
    return preset if preset in V2_VARIANTS else None


def resolve_v2_source(path_or_repo_id: str) -> str:
    """Maps an official registry name (``"350M-f16x16"``) that is not a local folder to its Hub repo
    (``"philippehansen/ViTok-v2-350M-f16x16"``); other folders and repo ids are returned unchanged."""
    path_or_repo_id = str(path_or_repo_id)
    preset = _preset_name(path_or_repo_id)
    if preset is None or os.path.exists(path_or_repo_id):
        return path_or_repo_id
    return f"{HUB_ORGANISATION}/ViTok-{preset}"


def resolve_v2_config(path_or_repo_id: str, variant: str | None = None) -> tuple[str, dict]:
    """Returns ``(variant name, AutoencoderViTok config)``.

    ``variant`` may be a preset name (``"v2-350M-f16x16"``), an official registry name (``"350M-f16x16"``), an
    official variant string (``"Ld4-Ld24/1x16x16"``) or ``None`` to infer it from the repo/folder name
    (``.../ViTok-v2-350M-f16x16`` or a registry name).
    """
    if variant is None:
        folder_name = os.path.basename(os.path.normpath(str(path_or_repo_id)))
        match = _REPO_NAME.search(folder_name)
        name = f"v2-{match['size'].upper()}-{match['stride'].lower()}" if match else _preset_name(folder_name)
        if name not in V2_VARIANTS:
            raise ValueError(
                f"cannot infer the ViTok-v2 variant from {path_or_repo_id!r}; expected a name containing one of "
                f"{[n.replace('v2-', 'ViTok-v2-') for n in V2_VARIANTS]}, or pass variant= (a preset name or a "
                "variant string such as 'Ld4-Ld24/1x16x16')"
            )
        return name, dict(VITOK_PRESETS[name])
    if _preset_name(variant) is not None:
        return _preset_name(variant), dict(VITOK_PRESETS[_preset_name(variant)])
    if "/" in variant:
        return variant, v2_config_from_variant(variant)
    raise ValueError(
        f"unknown ViTok-v2 variant {variant!r}; expected one of {sorted(V2_VARIANTS)} (or the official registry "
        f"name without 'v2-', e.g. '350M-f16x16') or a variant string "
        "such as 'Ld4-Ld24/1x16x16'"
    )


def _resolve_file(path_or_repo_id: str, filename: str, **hub_kwargs) -> str:
    if os.path.isdir(path_or_repo_id):
        path = os.path.join(path_or_repo_id, filename)
        if not os.path.isfile(path):
            raise ValueError(
                f"folder {path_or_repo_id!r} has no {filename}; expected encoder.safetensors and decoder.safetensors, "
                f"found {sorted(os.listdir(path_or_repo_id))}"
            )
        return path
    try:
        return hf_hub_download(path_or_repo_id, filename, **hub_kwargs)
    except (EntryNotFoundError, HfHubHTTPError, HFValidationError, OfflineModeIsEnabled) as error:
        raise ValueError(
            f"path_or_repo_id {path_or_repo_id!r} is neither a local folder nor a Hub repo from which {filename} "
            f"could be fetched (offline or missing?): {type(error).__name__}: {error}"
        ) from error


def convert_v2_state_dict(
    state_dict: dict[str, torch.Tensor], model: AutoencoderViTok, component: str, source: str
) -> dict[str, torch.Tensor]:
    """Renames one official file's keys (``encoder`` or ``decoder`` half) and checks them against ``model``."""
    converted = rename_keys(strip_prefixes(state_dict, ("_orig_mod.",)), V2_TO_DIFFUSERS)
    expected = {key: value.shape for key, value in model.state_dict().items() if key.startswith(f"{component}.")}
    check_state_dict(converted, expected, source)
    return converted


def load_vitok_v2(
    path_or_repo_id: str,
    variant: str | None = None,
    torch_dtype: torch.dtype | None = None,
    components: Sequence[str] = COMPONENTS,
    **hub_kwargs,
) -> AutoencoderViTok:
    """Loads published ViTok-v2 weights into an :class:`AutoencoderViTok`.

    Args:
        path_or_repo_id: a local folder holding ``encoder.safetensors`` / ``decoder.safetensors``, a Hub repo id
            such as ``"philippehansen/ViTok-v2-350M-f16x16"`` (downloaded with ``huggingface_hub.hf_hub_download``)
            or an official registry name such as ``"350M-f16x16"`` (that repo).
        variant: preset name, official variant string, or ``None`` to infer it from ``path_or_repo_id``.
        torch_dtype: dtype of the returned weights (default float32); files are cast on load.
        components: which halves to load. A half that is not loaded is never allocated (its parameters stay on
            the ``meta`` device) and calling it raises; such a model cannot be moved with ``.to(device)``.
        hub_kwargs: passed to ``hf_hub_download`` (``revision``, ``cache_dir``, ``token``, ...).

    Returns:
        ``AutoencoderViTok`` in eval mode. Latents are ``(B, c, H/p, W/p)``; ``encode(...).latent_dist`` is
        deterministic.

    Note:
        The official code has a RoPE broadcast bug when the token count equals the number of heads (16 tokens for
        the 350M models, e.g. 64x64 at p=16): it rotates by head index instead of token index. This port applies
        the correct per-token rotation, so outputs at N == heads differ from the official code on purpose.
    """
    components = tuple(components)
    if not components or any(component not in COMPONENTS for component in components):
        raise ValueError(f"components must be a non-empty subset of {COMPONENTS}, got {components}")
    dtype = torch_dtype or torch.float32
    path_or_repo_id = resolve_v2_source(path_or_repo_id)
    _, config = resolve_v2_config(path_or_repo_id, variant)
    with torch.device("meta"):
        model = AutoencoderViTok(**config)
    state_dict = {}
    for component in components:
        path = _resolve_file(path_or_repo_id, f"{component}.safetensors", **hub_kwargs)
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path} is not a readable safetensors file: {error}") from error
        converted = convert_v2_state_dict(tensors, model, component, source=path)
        state_dict.update({key: value.to(dtype) for key, value in converted.items()})
    model.load_state_dict(state_dict, strict=False, assign=True)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="Hub repo id or local folder with the official files")
    parser.add_argument("--output", required=True, help="folder for save_pretrained")
    parser.add_argument("--variant", default=None, help="preset name or variant string (default: from --source)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args(argv)
    model = load_vitok_v2(args.source, variant=args.variant, torch_dtype=getattr(torch, args.dtype))
    model.save_pretrained(args.output)
    print(f"saved AutoencoderViTok to {args.output}")


if __name__ == "__main__":
    main()
