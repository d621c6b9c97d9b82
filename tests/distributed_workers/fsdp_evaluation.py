"""One rank of tests/test_fsdp_evaluation.py (run by ``torchrun --nproc_per_node 2``; gloo on the CPU).

Shards tiny models per block and at the root with ``fully_shard``, with the ``reshard_after_forward`` that the
project's Accelerate FSDP2 configs pass (``fsdp2_vitok.yaml``, ``fsdp2_dit.yaml``, ``fsdp2_dit_video.yaml``), and
runs the training scripts' own functions on every rank, as the scripts do: ViTok's ``evaluate_reconstruction``
(``hf_compact.recipes.reconstruction``, stage-2 EMA of the decoder) and ``train_dit.sample_grid`` for the image
and the video DiT. Before that, one forward and backward pass, so the evaluation finds the parameters sharded as
they are after a training step.

The model and data builders are imported by the test for the one-process reference. Usage:
``torchrun --nproc_per_node 2 fsdp_evaluation.py OUTPUT_FOLDER``; rank 0 writes ``OUTPUT_FOLDER/results.json``,
the metrics, ``*-samples.npy`` and the files the scripts save.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs
from diffusers import DDPMScheduler, DiTTransformer2DModel
from launch import load_training_script
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

from hf_compact import AutoencoderViTok, DiTTransformer3DModel
from hf_compact.recipes.reconstruction import AutoencoderTrainingForward, evaluate_reconstruction
from hf_compact.training_utils.distributed import ShardedEMAModel, full_state_dict, shard_per_block

train_dit = load_training_script("train_dit")

NUM_EVAL_SAMPLES = 7  # not a multiple of the 2 x 2 samples per step: gather_for_metrics drops the padding
NUM_GRID_SAMPLES = 4
CLASS_NAMES = ["zero", "one", "two"]
# train_dit's sampling flags (guidance over the whole trajectory, its default).
SAMPLING = argparse.Namespace(
    samples_per_class=2, guidance_scale=4.0, guidance_interval=(0.0, 1.0), num_inference_steps=3, seed=0
)
# What the Accelerate config of each model passes to fully_shard (fsdp_reshard_after_forward).
RESHARD_AFTER_FORWARD = {"vitok": True, "dit_2d": False, "dit_3d": True}


def tiny_vitok(**overrides) -> AutoencoderViTok:
    torch.manual_seed(0)
    config = dict(
        latent_channels=4, patch_size=4, encoder_width=32, encoder_depth=1, encoder_heads=2, decoder_width=32,
        decoder_depth=2, decoder_heads=2, sample_size=16,
    )  # fmt: skip
    return AutoencoderViTok(**{**config, **overrides})


def vitok_training_forward() -> AutoencoderTrainingForward:
    """Stage 2 at tiny size: encoder frozen, as ``train_vitok.main`` builds it before ``prepare``."""
    autoencoder = tiny_vitok()
    autoencoder.encoder.requires_grad_(False)
    return AutoencoderTrainingForward(autoencoder, freeze_encoder=True)


def vitok_evaluation_data() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [{"pixel_values": torch.rand(3, 16, 16, generator=generator) * 2 - 1} for _ in range(NUM_EVAL_SAMPLES)]


def dit(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "dit_2d":
        return DiTTransformer2DModel(
            num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2, sample_size=4,
            patch_size=1, norm_num_groups=1, num_embeds_ada_norm=len(CLASS_NAMES),
        )  # fmt: skip
    return DiTTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2, sample_size=(4, 4),
        sample_frames=2, patch_size=1, num_embeds_ada_norm=len(CLASS_NAMES),
    )  # fmt: skip


def dit_vae(name: str) -> AutoencoderViTok:
    """The frozen autoencoder of the pipeline: 4 x 4 latents of 16 x 16 images, or of 4-frame clips (tubelets 2)."""
    return tiny_vitok(tubelet_size=2) if name == "dit_3d" else tiny_vitok()


def noise_scheduler() -> DDPMScheduler:
    """The scheduler ``train_dit.main`` trains with (learned-range variance)."""
    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", variance_type="learned_range", clip_sample=False
    )


def ema_averages(parameters, seed: int) -> list[torch.Tensor]:
    """Full EMA averages that differ from the weights: a stand-in for an EMA after training."""
    generator = torch.Generator().manual_seed(seed)
    return [parameter.detach() + 0.05 * torch.randn(parameter.shape, generator=generator) for parameter in parameters]


def load_averages(ema, averages: list[torch.Tensor]) -> None:
    """Load full averages into ``ema`` (``ShardedEMAModel`` cuts them into this rank's shards)."""
    state = ema.state_dict()
    state["shadow_params"] = averages
    ema.load_state_dict(state)


def training_step_without_update(model: nn.Module, inputs: dict) -> None:
    """One forward and backward pass: FSDP2 initialises and, after the backward pass, reshards every unit."""
    output = model(**inputs)
    (output[0] if isinstance(output, tuple) else output.sample).square().mean().backward()
    model.zero_grad(set_to_none=True)


def all_ranks_agree(value: bool) -> bool:
    flag = torch.tensor(int(value))
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag)


def after_inference(model: nn.Module, weights: dict[str, torch.Tensor]) -> dict:
    """The state the scripts need after evaluating: shards again, the training weights back, training mode."""
    state = full_state_dict(model, rank0_only=False)  # collective
    return {
        "all_parameters_dtensor": all_ranks_agree(all(isinstance(p, DTensor) for p in model.parameters())),
        "weights_restored": all_ranks_agree(all(torch.equal(state[key], weights[key]) for key in weights)),
        "training_mode": all_ranks_agree(model.training),
    }


def main() -> None:
    output = Path(sys.argv[1])
    # A short timeout: a rank left waiting in a collective fails the run instead of hanging it.
    accelerator = Accelerator(
        cpu=True, kwargs_handlers=[InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=60))]
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    mesh = init_device_mesh("cpu", (world,))
    saves: list[str] = []
    save_sample_grid = train_dit.save_sample_grid

    def recording_save(samples, rows, path, **kwargs):
        saves.append(str(path))
        return save_sample_grid(samples, rows, path, **kwargs)

    train_dit.save_sample_grid = recording_save
    results: dict = {"world": world}

    # ---- ViTok: evaluate_reconstruction with the EMA of the decoder
    model = vitok_training_forward()
    averages = ema_averages(model.autoencoder.decoder.parameters(), seed=2)
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    shard_per_block(model, mesh=mesh, reshard_after_forward=RESHARD_AFTER_FORWARD["vitok"])
    model.train()
    training_step_without_update(model, {"pixel_values": torch.rand(2, 3, 16, 16) * 2 - 1})
    ema = ShardedEMAModel(model.autoencoder.decoder.parameters(), decay=0.9)
    load_averages(ema, averages)
    dataloader = accelerator.prepare(torch.utils.data.DataLoader(vitok_evaluation_data(), batch_size=2))
    metrics = evaluate_reconstruction(
        model, dataloader, accelerator, {}, output / "vitok-reconstructions.png", NUM_GRID_SAMPLES, ema=ema
    )
    results["vitok"] = {"metrics": metrics, **after_inference(model, weights)}

    # ---- DiT: sample_grid, image and video
    for name in ("dit_2d", "dit_3d"):
        model = dit(name)
        averages = ema_averages(model.parameters(), seed=3)
        weights = {key: value.clone() for key, value in model.state_dict().items()}
        shard_per_block(model, mesh=mesh, reshard_after_forward=RESHARD_AFTER_FORWARD[name])
        model.train()
        latents = torch.randn(2, 4, 2, 4, 4) if name == "dit_3d" else torch.randn(2, 4, 4, 4)
        training_step_without_update(
            model,
            {
                "hidden_states": latents,
                "timestep": torch.tensor([10, 500]),
                "class_labels": torch.tensor([0, 2]),
            },
        )
        ema = ShardedEMAModel(model.parameters(), decay=0.9)
        load_averages(ema, averages)
        saves.clear()
        samples = train_dit.sample_grid(
            model,
            ema,
            dit_vae(name),
            noise_scheduler(),
            CLASS_NAMES,
            SAMPLING,
            accelerator,
            output / f"{name}-grid",
        )
        every_rank = [None] * world
        dist.all_gather_object(every_rank, {"samples": samples, "saves": list(saves)})
        results[name] = {
            "ranks_sampled_equal": all(np.array_equal(entry["samples"], samples) for entry in every_rank),
            "saves_per_rank": [entry["saves"] for entry in every_rank],
            "parameter_sum": train_dit.parameter_sum(model).item(),  # what train_dit.main reports per process
            **after_inference(model, weights),
        }
        if rank == 0:
            np.save(output / f"{name}-samples.npy", samples)

    if rank == 0:
        (output / "results.json").write_text(json.dumps(results, indent=2))
    accelerator.wait_for_everyone()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
