"""One rank of tests/test_fsdp.py (run by ``torchrun --nproc_per_node 2``; gloo on the CPU).

For every model family: shard a copy per block with ``fully_shard`` (blocks found through ``_no_split_modules``),
take two AdamW steps on this rank's half of a batch, and record how far the gathered weights are from an unsharded
copy stepped on the whole batch in this process. The DiT also carries a ``ShardedEMAModel`` and a
``save_pretrained`` of the gathered weights. Rank 0 writes ``sys.argv[1]/results.json``.
"""

import copy
import json
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from diffusers import DiTTransformer2DModel
from diffusers.training_utils import EMAModel
from safetensors.torch import save_file
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    CheckpointWrapper,
    apply_activation_checkpointing,
    checkpoint_wrapper,
)
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from hf_compact import (
    AutoencoderViTok,
    CCTConfig,
    CCTForImageClassification,
    DiTTransformer3DModel,
    TextCCTConfig,
    TextCCTForSequenceClassification,
)
from hf_compact.training_utils.distributed import (
    ShardedEMAModel,
    block_class_names,
    freeze,
    full_state_dict,
    shard_per_block,
    trainable_parameters,
    unsharded_copy,
)
from hf_compact.vitok.presets import VITOK_PRESETS

BATCH = 4


def build_models() -> dict:
    torch.manual_seed(0)
    cct = CCTForImageClassification(CCTConfig(
        image_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3,
    ))  # fmt: skip
    text_cct = TextCCTForSequenceClassification(TextCCTConfig(
        vocab_size=50, word_embedding_dim=12, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=24, num_labels=3, freeze_word_embeddings=True,
    ))  # fmt: skip
    vitok = AutoencoderViTok(
        latent_channels=4, patch_size=4, encoder_width=32, encoder_depth=1, encoder_heads=2, decoder_width=32,
        decoder_depth=2, decoder_heads=2, sample_size=16,
    )  # fmt: skip
    dit_3d = DiTTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=2, sample_size=2, sample_frames=2,
        patch_size=1, num_embeds_ada_norm=3,
    )  # fmt: skip
    dit_2d = DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2, sample_size=4,
        patch_size=1, norm_num_groups=1, num_embeds_ada_norm=3,
    )  # fmt: skip
    dit_2d_all_gathered = copy.deepcopy(dit_2d)
    # The ViTok-v2 architecture at tiny size, for the decoder fine-tune (encoder frozen)
    v2_architecture = {
        key: value
        for key, value in VITOK_PRESETS["v2-350M-f16x16"].items()
        if "width" not in key
        and "depth" not in key
        and "heads" not in key
        and key not in ("patch_size", "latent_channels", "layer_scale_init")
    }
    vitok_v2 = AutoencoderViTok(
        **v2_architecture,
        layer_scale_init=0.1,
        latent_channels=4,
        patch_size=4,
        encoder_width=32,
        encoder_depth=1,
        encoder_heads=2,
        decoder_width=32,
        decoder_depth=2,
        decoder_heads=2,
        sample_size=16,
    )
    # fmt: skip
    generator = torch.Generator().manual_seed(1)
    timesteps, labels = torch.randint(0, 1000, (BATCH,), generator=generator), torch.tensor([0, 1, 2, 0])
    inputs = {
        "cct": (cct, {"pixel_values": torch.randn(BATCH, 3, 16, 16, generator=generator), "labels": labels}),
        "text_cct": (text_cct, {"input_ids": torch.randint(0, 50, (BATCH, 24), generator=generator),
                                "labels": labels}),
        "vitok": (vitok, {"sample": torch.rand(BATCH, 3, 16, 16, generator=generator) * 2 - 1}),
        "vitok_v2_decoder": (vitok_v2, {"sample": torch.rand(BATCH, 3, 16, 16, generator=generator) * 2 - 1}),
        "dit_3d": (dit_3d, {"hidden_states": torch.randn(BATCH, 4, 2, 2, 2, generator=generator),
                            "timestep": timesteps, "class_labels": labels}),
        "dit_2d": (dit_2d, {"hidden_states": torch.randn(BATCH, 4, 4, 4, generator=generator),
                            "timestep": timesteps, "class_labels": labels}),
    }  # fmt: skip
    # What Accelerate's FSDP2 config for image DiTs does: every block kept gathered until the backward.
    inputs["dit_2d_all_gathered"] = (dit_2d_all_gathered, inputs["dit_2d"][1])
    return inputs


def loss_of(name: str, model, batch: dict) -> torch.Tensor:
    if name in ("cct", "text_cct"):
        return model(**batch).loss
    if name.startswith("vitok"):
        return (model(batch["sample"]).sample - batch["sample"]).square().mean()
    return model(**batch).sample.square().mean()  # the DiTs


def adamw(model):
    # eps=1e-6: the gradient of CCT's pooling bias is zero up to float noise (softmax ignores a shift); with Adam's
    # default 1e-8 that noise alone makes lr-sized steps of random sign in either run.
    return torch.optim.AdamW(list(trainable_parameters(model)), lr=1e-3, eps=1e-6, weight_decay=0.05)


def two_steps(name, model, batch, ema=None, optimizer=None, steps=2):
    optimizer = optimizer or adamw(model)
    for _ in range(steps):
        loss_of(name, model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
        if ema is not None:
            ema.step(model.parameters())
    return optimizer


def resumes_from_a_sharded_checkpoint(name, model, optimizer, batch, mesh, folder) -> bool:
    """What SHARDED_STATE_DICT does: torch.distributed.checkpoint writes each rank's shards of the weights and
    AdamW state; a fresh sharded model and optimizer load them, and the next step equals the uninterrupted one."""
    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
    dcp.save(state, checkpoint_id=folder)
    restored = shard_per_block(build_models()[name][0].eval(), mesh=mesh)
    restored_optimizer = adamw(restored)
    template = {
        "model": get_model_state_dict(restored),
        "optim": get_optimizer_state_dict(restored, restored_optimizer),
    }
    dcp.load(template, checkpoint_id=folder)
    set_model_state_dict(restored, template["model"])
    set_optimizer_state_dict(restored, restored_optimizer, template["optim"])
    two_steps(name, model, batch, optimizer=optimizer, steps=1)
    two_steps(name, restored, batch, optimizer=restored_optimizer, steps=1)
    equal = torch.tensor(int(all(
        torch.equal(a.to_local(), b.to_local()) for a, b in zip(model.parameters(), restored.parameters())
    )))  # fmt: skip
    dist.all_reduce(equal, op=dist.ReduceOp.MIN)
    return bool(equal)


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    results = {}
    for name, (model, batch) in build_models().items():
        model.eval()  # no dropout / label dropout: both runs see the same function
        if name == "vitok_v2_decoder":  # the fine-tuning recipe: encoder frozen, decoder trained
            freeze([model.encoder])
        reference = copy.deepcopy(model)
        reference_ema = EMAModel(reference.parameters(), decay=0.5) if name == "dit_3d" else None
        two_steps(name, reference, batch, reference_ema)

        blocks = block_class_names(model)
        if name == "dit_2d_all_gathered":
            shard_per_block(model, mesh=mesh, reshard_after_forward=False)
        elif name == "vitok_v2_decoder":  # activation checkpointing of every block, then FSDP2, as Accelerate does
            block_names = set(block_class_names(model))
            apply_activation_checkpointing(
                model, checkpoint_wrapper_fn=checkpoint_wrapper,
                check_fn=lambda module, names=block_names: type(module).__name__ in names,
            )  # fmt: skip
            shard_per_block(model, mesh=mesh)
        else:
            shard_per_block(model, mesh=mesh)
        local = {key: value.chunk(world)[rank] if value.ndim else value for key, value in batch.items()}
        ema = ShardedEMAModel(model.parameters(), decay=0.5) if name == "dit_3d" else None
        optimizer = two_steps(name, model, local, ema)

        gathered = full_state_dict(model)  # collective; only rank 0 receives the tensors
        expected = reference.state_dict()
        initial = build_models()[name][0].state_dict()
        entry = {} if rank else {
            "blocks": blocks,
            "sharded_blocks": sum(isinstance(module, FSDPModule) and type(module).__name__[len("FSDP"):] in blocks
                                  for module in model.modules()),
            "num_blocks": sum(type(module).__name__ in blocks for module in build_models()[name][0].modules()),
            "all_parameters_dtensor": all(isinstance(p, DTensor) for p in model.parameters()),
            "max_difference": max((gathered[key] - expected[key]).abs().max().item() for key in expected),
            "max_update": max((expected[key] - initial[key]).abs().max().item() for key in expected),
            "same_keys": sorted(gathered) == sorted(expected),
            "checkpointed_blocks": sum(isinstance(module, CheckpointWrapper) for module in model.modules()),
            "frozen_unchanged": all(torch.equal(gathered[key], initial[key]) for key in expected
                                    if key.startswith("encoder.")) if name == "vitok_v2_decoder" else None,
        }  # fmt: skip
        if ema is not None:
            ema_state = ema.state_dict()  # collective: gathers the averaged shards on every rank
            restored = ShardedEMAModel(model.parameters(), decay=0.5)
            restored.load_state_dict(ema_state)
            reload_equal = torch.tensor(int(all(
                torch.equal(a.to_local(), b.to_local()) for a, b in zip(restored.shadow_params, ema.shadow_params)
            )))  # fmt: skip
            dist.all_reduce(reload_equal, op=dist.ReduceOp.MIN)  # every rank got its own shards back
            entry["ema_reload_equal"] = bool(reload_equal)
            entry["ema_optimization_step"] = restored.optimization_step
            entry["ema_max_difference"] = max(
                (mine - theirs).abs().max().item()
                for mine, theirs in zip(ema_state["shadow_params"], reference_ema.shadow_params)
            )
            entry["ema_differs_from_weights"] = any(
                not torch.equal(mine, theirs)
                for mine, theirs in zip(ema_state["shadow_params"], reference.parameters())
            )
            if rank == 0:
                unsharded_copy(model, gathered).save_pretrained(f"{sys.argv[1]}/dit_3d")
                save_file(expected, f"{sys.argv[1]}/dit_3d_reference.safetensors")
        if name == "vitok":  # after the comparisons above: this takes one more step
            entry["resumed_step_equal"] = resumes_from_a_sharded_checkpoint(
                name, model, optimizer, local, mesh, f"{sys.argv[1]}/sharded-checkpoint"
            )
        results[name] = entry
    if rank == 0:
        with open(f"{sys.argv[1]}/results.json", "w") as handle:
            json.dump({"world": world, **results}, handle, indent=2)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
