"""What a model card says about the architecture: a name, the key hyper-parameters, parameters and MACs.

MACs are measured (not estimated) with :func:`~hf_compact.hub.macs.count_macs` on one input of the size the model
was built for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DiTTransformer2DModel
from torch import nn

from ..dit.presets import dit_paper_name
from .families import CCT, DIT, DIT_VIDEO, TEXT_CCT, VITOK, VITOK_VIDEO, CardFamily
from .macs import MacCount, count_macs


@dataclass(frozen=True)
class ComputeCost:
    """MACs of one forward pass of a component on the input described by `input_description`."""

    component: str
    input_description: str
    macs: MacCount


@dataclass(frozen=True)
class Architecture:
    """Architecture facts of a model card: `name` (e.g. `"CCT-7/3x1"`), hyper-parameter `rows`, parameter
    counts per component and the measured compute costs."""

    name: str
    rows: list[tuple[str, str]]
    parameters: dict[str, int]
    costs: list[ComputeCost]

    @property
    def total_parameters(self) -> int:
        return sum(self.parameters.values())


def count_parameters(module: nn.Module) -> int:
    """Parameters of `module` (fixed tables stored as buffers, like CCT's sine embeddings, are not counted)."""
    return sum(parameter.numel() for parameter in module.parameters())


def _zeros(module: nn.Module, *shape: int) -> torch.Tensor:
    """An input of `shape` on the device and in the floating dtype of `module`'s weights."""
    parameter = next(module.parameters())
    return torch.zeros(shape, device=parameter.device, dtype=parameter.dtype)


def _shape(*sizes: int) -> str:
    return " x ".join(str(size) for size in sizes)


def _encoder_rows(config, tokenizer: str) -> list[tuple[str, str]]:
    """Rows shared by the vision and text CCT families (same encoder, pooling and head)."""
    return [
        ("tokenizer", tokenizer),
        ("encoder layers", str(config.num_hidden_layers)),
        ("attention heads", str(config.num_attention_heads)),
        ("hidden size / MLP size", f"{config.hidden_size} / {config.intermediate_size}"),
        ("position embedding", config.position_embedding_type),
        ("pooling", "sequence pooling (SeqPool)" if config.pooling_type == "seq_pool" else "class token"),
        ("classes", str(config.num_labels)),
    ]


def _describe_cct(model, training_config: Mapping[str, Any]) -> Architecture:
    config = model.config
    size = config.image_size
    pixel_values = _zeros(model, 1, config.num_channels, size, size)
    if config.tokenizer_type == "conv":
        kernel = f"{config.conv_kernel_size}x{config.conv_kernel_size}"
        tokenizer = f"{config.num_conv_layers} x [conv {kernel}, ReLU, max-pool]"
    else:
        tokenizer = f"{config.patch_size}x{config.patch_size} patches"
    rows = [("resolution", f"{size} x {size}"), *_encoder_rows(config, tokenizer)]
    cost = ComputeCost(
        "model",
        f"one {_shape(config.num_channels, size, size)} image",
        count_macs(lambda: model(pixel_values)),
    )
    return Architecture(config.paper_name, rows, {"model": count_parameters(model)}, [cost])


def _describe_text_cct(model, training_config: Mapping[str, Any]) -> Architecture:
    config = model.config
    num_words = config.max_position_embeddings
    input_ids = torch.full((1, num_words), min(2, config.vocab_size - 1), dtype=torch.long, device=model.device)
    tokenizer = {
        "conv": f"1-D conv over {config.conv_kernel_size} words, ReLU, max-pool",
        "patch": f"patches of {config.patch_size} words",
        "none": "none (the word vectors are the tokens)",
    }[config.tokenizer_type]
    rows = [
        ("vocabulary / word vector size", f"{config.vocab_size} / {config.word_embedding_dim}"),
        ("longest input (words)", str(num_words)),
        *_encoder_rows(config, tokenizer),
    ]
    cost = ComputeCost("model", f"one text of {num_words} words", count_macs(lambda: model(input_ids)))
    return Architecture(config.paper_name, rows, {"model": count_parameters(model)}, [cost])


def _vitok_sample_shape(config, num_frames: int | None) -> tuple[int, ...]:
    """One input at the training resolution: an image, or a clip when the autoencoder has tubelets (q > 1)."""
    size = config.sample_size
    if config.tubelet_size == 1 and not num_frames:
        return (1, config.in_channels, size, size)
    return (1, config.in_channels, num_frames or config.tubelet_size, size, size)


def _vitok_rows(config) -> list[tuple[str, str]]:
    return [
        ("patch / tubelet size", f"{config.patch_size} / {config.tubelet_size}"),
        ("latent channels", str(config.latent_channels)),
        (
            "encoder width / depth / heads",
            f"{config.encoder_width} / {config.encoder_depth} / {config.encoder_heads}",
        ),
        (
            "decoder width / depth / heads",
            f"{config.decoder_width} / {config.decoder_depth} / {config.decoder_heads}",
        ),
        ("block / MLP / norm", f"{config.block_type} / {config.mlp_type} / {config.norm_type}"),
        ("rotary position embedding", config.rope_type),
        ("latent", config.latent_type),
        ("scaling factor", f"{config.scaling_factor:.4g}"),
    ]


def _describe_vitok(vae, training_config: Mapping[str, Any]) -> Architecture:
    config = vae.config
    sample_shape = _vitok_sample_shape(config, training_config.get("num_frames"))
    sample = _zeros(vae, *sample_shape)
    latents = vae.encode(sample).latent_dist.mode()
    num_tokens = latents[0, 0].numel()
    rows = [
        ("training resolution", f"{config.sample_size} x {config.sample_size}"),
        *_vitok_rows(config),
        ("tokens / latent size E per input", f"{num_tokens} / {num_tokens * config.latent_channels}"),
    ]
    kind = "clip" if len(sample_shape) == 5 else "image"
    costs = [
        ComputeCost("encoder", f"one {_shape(*sample_shape[1:])} {kind}", count_macs(lambda: vae.encode(sample))),
        ComputeCost("decoder", f"one {_shape(*latents.shape[1:])} latent", count_macs(lambda: vae.decode(latents))),
    ]
    parameters = {"encoder": count_parameters(vae.encoder), "decoder": count_parameters(vae.decoder)}
    return Architecture(vae.paper_name, rows, parameters, costs)


def _dit_latent_shape(transformer) -> tuple[int, ...]:
    config = transformer.config
    size = config.sample_size if isinstance(config.sample_size, int) else config.sample_size[0]
    if hasattr(config, "sample_frames"):
        return (1, config.in_channels, config.sample_frames, size, size)
    return (1, config.in_channels, size, size)


def _describe_dit(model_or_pipeline, training_config: Mapping[str, Any]) -> Architecture:
    transformer = getattr(model_or_pipeline, "transformer", model_or_pipeline)
    vae = getattr(model_or_pipeline, "vae", None)
    config = transformer.config
    latent_shape = _dit_latent_shape(transformer)
    latents = _zeros(transformer, *latent_shape)
    timestep = torch.tensor([999], device=latents.device)
    class_labels = torch.tensor([0], device=latents.device)
    step = count_macs(lambda: transformer(latents, timestep=timestep, class_labels=class_labels))
    patch = config.patch_size if isinstance(config.patch_size, int) else "x".join(map(str, config.patch_size))
    rows = [
        ("transformer", type(transformer).__name__),
        (
            "layers / heads / width",
            f"{config.num_layers} / {config.num_attention_heads} / "
            f"{config.num_attention_heads * config.attention_head_dim}",
        ),
        ("latent grid", _shape(*latent_shape[1:])),
        ("patch size on the latent grid", str(patch)),
        ("classes (+ 1 null class for guidance)", str(config.num_embeds_ada_norm)),
    ]
    parameters = {"transformer": count_parameters(transformer)}
    costs = [ComputeCost("transformer", f"one denoising step, one {_shape(*latent_shape[1:])} latent", step)]
    if vae is not None:
        rows += [
            ("autoencoder", type(vae).__name__),
            ("scheduler", type(model_or_pipeline.scheduler).__name__),
        ]
        parameters["autoencoder"] = count_parameters(vae)
        vae_latents = latents.to(next(vae.parameters())) / vae.config.scaling_factor
        decode = count_macs(lambda: vae.decode(vae_latents))
        costs.append(ComputeCost("autoencoder decoder", f"one {_shape(*latent_shape[1:])} latent", decode))
    # diffusers' own DiTTransformer2DModel has no `paper_name`: the DiT presets name it.
    name = dit_paper_name(config) if isinstance(transformer, DiTTransformer2DModel) else transformer.paper_name
    return Architecture(name, rows, parameters, costs)


_DESCRIBERS = {
    CCT.name: _describe_cct,
    TEXT_CCT.name: _describe_text_cct,
    VITOK.name: _describe_vitok,
    VITOK_VIDEO.name: _describe_vitok,
    DIT.name: _describe_dit,
    DIT_VIDEO.name: _describe_dit,
}


def describe_architecture(
    family: CardFamily, model_or_pipeline, training_config: Mapping[str, Any] | None = None
) -> Architecture:
    """Architecture facts of `model_or_pipeline` (a member of `family`), measured in eval mode without gradients.

    `training_config` supplies what the model config does not store (e.g. `num_frames` of a video autoencoder).
    """
    if isinstance(model_or_pipeline, nn.Module):
        modules = [model_or_pipeline]
    else:
        modules = [
            component for component in model_or_pipeline.components.values() if isinstance(component, nn.Module)
        ]
    was_training = [module.training for module in modules]
    for module in modules:
        module.eval()
    try:
        with torch.no_grad():
            return _DESCRIBERS[family.name](model_or_pipeline, training_config or {})
    finally:
        for module, training in zip(modules, was_training):
            module.train(training)
