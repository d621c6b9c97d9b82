"""What the training scripts need beyond DDP: sharding per block (FSDP2), gathering a sharded model for
``save_pretrained``, an EMA over sharded parameters, and frozen models kept out of DeepSpeed ZeRO-3.

Under FSDP2 (``torch.distributed.fsdp.fully_shard``, Accelerate's ``fsdp_version: 2``) every parameter is a
``DTensor`` holding ``1 / world_size`` of the tensor; under DeepSpeed ZeRO-3 the parameters are partitioned the same
way. Three things of a DDP script then break silently:

* ``model.state_dict()`` returns shards, so ``save_pretrained`` must be given the gathered full state dict
  (:func:`save_pretrained_gathered`, on every process);
* an EMA built before ``accelerator.prepare`` tracks full tensors that no longer match the sharded ones, and one
  that tracks the shards pickles only rank 0's shard into the checkpoint (:class:`ShardedEMAModel`);
* ``deepspeed.zero.Init`` (``zero3_init_flag``) partitions *every* model built while it is active, including a
  frozen autoencoder that is never given to ``prepare`` (:func:`frozen_model_context`).

Evaluation and sampling outside the training step go through :func:`sharded_inference`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

import torch
from diffusers.training_utils import EMAModel
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

# Models from other libraries whose class does not declare ``_no_split_modules`` (diffusers 0.42).
BLOCK_CLASSES_OF = {"DiTTransformer2DModel": ("BasicTransformerBlock",)}
# Blocks whose parameters the model reads outside the block's own forward, so they must stay gathered until the
# backward pass: diffusers' DiTTransformer2DModel computes its output modulation with ``transformer_blocks[0].norm1``
# after all blocks ran.
READ_AFTER_FORWARD = {"DiTTransformer2DModel": ("transformer_blocks.0",)}


def block_class_names(model: nn.Module) -> list[str]:
    """Sorted names of the block classes that FSDP shards one by one (``_no_split_modules`` present in ``model``).

    Searches ``model`` and its submodules, so a wrapper (the ViTok training forward) finds the autoencoder's blocks.
    This is the list for ``fsdp_transformer_layer_cls_to_wrap`` in an Accelerate FSDP config.

    Raises:
        ValueError: when no submodule declares blocks that it contains.
    """
    present = {type(module).__name__ for module in model.modules()}
    declared: set[str] = set()
    for module in model.modules():
        names = getattr(module, "_no_split_modules", None) or BLOCK_CLASSES_OF.get(type(module).__name__, ())
        declared.update(name for name in names if name in present)
    if not declared:
        raise ValueError(
            f"model: expected a model whose _no_split_modules names block classes it contains, got "
            f"{type(model).__name__} (no such blocks)."
        )
    return sorted(declared)  # transformers may turn ``_no_split_modules`` into a set


def shard_per_block(model: nn.Module, mesh=None, **fully_shard_kwargs) -> nn.Module:
    """Apply ``fully_shard`` to every block (see :func:`block_class_names`) and then to ``model`` itself.

    This is what Accelerate's ``TRANSFORMER_BASED_WRAP`` does with FSDP2: one all-gather per block in the forward
    pass, so at most one block is unsharded at a time. ``mesh`` is a 1-D ``DeviceMesh`` (default: all processes on
    the current device type); extra keyword arguments (``reshard_after_forward``, ``mp_policy``...) go to
    ``fully_shard``. Blocks that the model reads outside their own forward (``READ_AFTER_FORWARD``) stay gathered
    until the backward pass (``reshard_after_forward=False``). Modifies and returns ``model``.
    """
    from torch.distributed.fsdp import fully_shard

    names = set(block_class_names(model))
    kept = {name for module in model.modules() for name in READ_AFTER_FORWARD.get(type(module).__name__, ())}
    for name, block in model.named_modules():
        if type(block).__name__ in names:
            keep_gathered = any(name == kept_name or name.endswith("." + kept_name) for kept_name in kept)
            kwargs = {**fully_shard_kwargs, "reshard_after_forward": False} if keep_gathered else fully_shard_kwargs
            fully_shard(block, mesh=mesh, **kwargs)
    fully_shard(model, mesh=mesh, **fully_shard_kwargs)
    return model


def full_state_dict(model: nn.Module, rank0_only: bool = True) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict of an FSDP2 model, on the CPU; call it on every process.

    With ``rank0_only`` (what ``accelerator.get_state_dict(model)`` does under ``fsdp_version: 2``) only process 0
    receives the tensors and the others get ``{}``; otherwise every process gets them. A model that is not sharded
    returns its ordinary state dict.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not any(isinstance(parameter, DTensor) for parameter in model.parameters()):
        return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    options = StateDictOptions(full_state_dict=True, cpu_offload=rank0_only)
    return {name: tensor.cpu() for name, tensor in get_model_state_dict(model, options=options).items()}


def unsharded_copy(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """A plain CPU instance of ``model``'s class and config holding ``state_dict`` (for ``save_pretrained``).

    ``model`` is a transformers ``PreTrainedModel`` or a diffusers ``ModelMixin``, sharded or not; only its class and
    config are read. Raises ``ValueError`` if ``state_dict`` misses or adds keys.
    """
    config = model.config
    copy = type(model).from_config(config) if hasattr(type(model), "from_config") else type(model)(config)
    missing, unexpected = copy.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"state_dict: expected the keys of {type(model).__name__}, got {len(missing)} missing "
            f"({missing[:3]}...) and {len(unexpected)} unexpected ({unexpected[:3]}...)."
        )
    return copy


def save_pretrained_gathered(
    accelerator, prepared_model: nn.Module, save_directory: str | os.PathLike, submodule: str | None = None
) -> None:
    """``save_pretrained`` of a model that DDP, FSDP or DeepSpeed may have sharded; call it on every process.

    ``accelerator.get_state_dict`` gathers the full weights (a collective under FSDP and ZeRO-3); the main process
    then saves them through an unsharded copy, so the folder loads with ``from_pretrained`` whatever the run's
    ``distributed_type``.

    Args:
        accelerator: the run's ``Accelerator``.
        prepared_model: what ``accelerator.prepare`` returned.
        save_directory: output folder.
        submodule: dotted name of the model to save inside ``prepared_model`` (``"autoencoder"`` for the ViTok
            training forward); ``None`` saves ``prepared_model`` itself.
    """
    state_dict = accelerator.get_state_dict(prepared_model)
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(prepared_model)
    if submodule is not None:
        model = model.get_submodule(submodule)
        prefix = submodule + "."
        state_dict = {name[len(prefix) :]: tensor for name, tensor in state_dict.items() if name.startswith(prefix)}
    unsharded_copy(model, state_dict).save_pretrained(save_directory)


class ShardedEMAModel(EMAModel):
    """diffusers' ``EMAModel`` over parameters that may be FSDP2 shards (``DTensor``).

    Build it *after* ``accelerator.prepare`` from the prepared model's parameters: every process then averages its
    own shard (no communication per step, ``1 / world_size`` of the memory). ``state_dict`` gathers the full
    averages (a collective: Accelerate's ``save_state`` calls it on every process and writes rank 0's copy) and
    ``load_state_dict`` cuts the full averages back into this process's shards, so a checkpoint resumes on any
    number of processes. With plain tensors it is exactly ``EMAModel``.
    """

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["shadow_params"] = [
            shadow.full_tensor() if isinstance(shadow, DTensor) else shadow for shadow in state["shadow_params"]
        ]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        shards = self.shadow_params
        super().load_state_dict(state_dict)
        self.shadow_params = [
            distribute_tensor(
                full.to(shard.device_mesh.device_type),
                shard.device_mesh,
                shard.placements,
                src_data_rank=None,
            )
            if isinstance(shard, DTensor)
            else full
            for shard, full in zip(shards, self.shadow_params)
        ]


@contextlib.contextmanager
def sharded_inference(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate or sample with a prepared model that FSDP2 may have sharded; enter it on every process.

    FSDP2 all-gathers a unit's parameters only around the ``forward`` of the module it sharded, and every process
    must take part in every all-gather. So inside this context:

    * call ``model`` itself (or a pipeline that calls it), not ``encode`` / ``decode`` or other methods of its
      submodules, which would see the shards of the root unit's parameters (patch embeddings, final norms);
    * run the same forward passes on every process, and write files on the main process only.

    After a forward without a backward pass, FSDP2 leaves gathered the units that do not reshard after the forward
    (the root by default, and every unit sharded with ``reshard_after_forward=False``). On exit every unit of
    ``model`` is resharded, so its parameters are shards again, as the optimizer, ``ShardedEMAModel.restore`` /
    ``copy_to`` and ``state_dict`` expect. For a model that is not sharded (one process, DDP) it does nothing.

    Yields:
        ``model``.
    """
    from torch.distributed.fsdp import FSDPModule

    try:
        yield model
    finally:
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()  # not recursive; a no-op for a unit that is already sharded


def frozen_model_context() -> contextlib.AbstractContextManager:
    """Context to build a frozen model that is not given to ``accelerator.prepare`` (the VAE of DiT training).

    Under DeepSpeed ZeRO-3 with ``zero3_init_flag: true``, Accelerate makes ``from_pretrained`` partition every model
    it builds; a model that then never goes through ``prepare`` has empty parameters on every process. Inside this
    context ZeRO-3 initialisation is off, so the frozen model is whole on every process. Elsewhere it does nothing.
    """
    from accelerate.state import AcceleratorState

    state = AcceleratorState() if AcceleratorState._shared_state else None
    plugin = getattr(state, "deepspeed_plugin", None) if state is not None else None
    if plugin is None:
        return contextlib.nullcontext()
    return plugin.zero3_init_context_manager(enable=False)


def trainable_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """The parameters that get gradients (for the optimizer of a partly frozen model, e.g. ViTok stage 2)."""
    return (parameter for parameter in model.parameters() if parameter.requires_grad)


def freeze(modules: Iterable[nn.Module]) -> None:
    """Stop gradients through ``modules`` and put them in eval mode (dropout off), before ``prepare``.

    FSDP2 and ZeRO-3 accept frozen and trained parameters in the same sharded module; what they need is that the
    flag is set before sharding (ZeRO-3 builds its partitions, FSDP2 its gradient buffers, at ``prepare``) and that
    the optimizer only gets :func:`trainable_parameters`.
    """
    for module in modules:
        module.requires_grad_(False)
        module.eval()


__all__ = [
    "BLOCK_CLASSES_OF",
    "ShardedEMAModel",
    "block_class_names",
    "freeze",
    "frozen_model_context",
    "full_state_dict",
    "save_pretrained_gathered",
    "shard_per_block",
    "sharded_inference",
    "trainable_parameters",
    "unsharded_copy",
]
