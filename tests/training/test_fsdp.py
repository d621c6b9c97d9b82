"""FSDP2 on the CPU: every model shards per block and trains like one process; the helpers of
``hf_compact.training_utils.distributed`` (gathered save, sharded EMA, frozen models).

The two-process part is one ``torchrun --nproc_per_node 2`` launch (gloo) of
``tests/distributed_workers/fsdp_two_steps.py`` covering all model families.
"""

import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from launch import run_two_processes
from safetensors.torch import load_file
from torch import nn

from hf_compact import CCTConfig, CCTForImageClassification, DiTTransformer3DModel
from hf_compact.training_utils.distributed import (
    ShardedEMAModel,
    block_class_names,
    freeze,
    frozen_model_context,
    full_state_dict,
    save_pretrained_gathered,
    trainable_parameters,
    unsharded_copy,
)

WORKER = Path(__file__).parents[1] / "distributed_workers" / "fsdp_two_steps.py"
FAMILIES = ("cct", "text_cct", "vitok", "vitok_v2_decoder", "dit_3d", "dit_2d", "dit_2d_all_gathered")


def tiny_cct() -> CCTForImageClassification:
    torch.manual_seed(0)
    return CCTForImageClassification(
        CCTConfig(image_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    )


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("fsdp")
    run_two_processes(WORKER, str(output))
    return output, json.loads((output / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_two_sharded_adamw_steps_equal_one_process(two_process_run, family):
    """Each block is its own FSDP2 unit, every parameter a DTensor shard, and two AdamW steps on half a batch per
    rank give the weights of two steps on the whole batch in one process (float tolerance, well below a step)."""
    _, results = two_process_run
    assert results["world"] == 2
    result = results[family]
    assert result["same_keys"]
    assert result["all_parameters_dtensor"]
    assert result["sharded_blocks"] == result["num_blocks"] >= 2
    assert result["max_update"] > 3e-4  # the weights really moved
    assert result["max_difference"] < 1e-5, result


@pytest.mark.slow
def test_vitok_v2_decoder_fine_tune_with_activation_checkpointing(two_process_run):
    """The decoder fine-tune recipe at tiny size (ViTok-v2 architecture): encoder frozen, every block wrapped for
    activation checkpointing and then sharded; equal to one process, and the encoder did not move."""
    _, results = two_process_run
    result = results["vitok_v2_decoder"]
    assert result["checkpointed_blocks"] == result["num_blocks"] == 3
    assert result["frozen_unchanged"] is True
    assert result["max_difference"] < 1e-5 and result["max_update"] > 3e-4


@pytest.mark.slow
def test_sharded_checkpoint_resumes_exactly(two_process_run):
    """Each rank writes its shards of the weights and AdamW state (torch.distributed.checkpoint, what Accelerate's
    SHARDED_STATE_DICT uses); a fresh sharded model and optimizer load them and take the same next step."""
    output, results = two_process_run
    assert results["vitok"]["resumed_step_equal"] is True
    assert sorted(path.name for path in (output / "sharded-checkpoint").glob("*.distcp")) == [
        "__0_0.distcp",
        "__1_0.distcp",
    ]


@pytest.mark.slow
def test_blocks_are_the_declared_block_classes(two_process_run):
    _, results = two_process_run
    assert results["cct"]["blocks"] == ["CCTEmbeddings", "CCTLayer"]
    assert results["text_cct"]["blocks"] == ["CCTLayer", "TextCCTEmbeddings"]
    assert results["vitok"]["blocks"] == ["TransformerBlock"]
    assert results["dit_3d"]["blocks"] == ["DiTBlock3D"]
    assert results["dit_2d"]["blocks"] == ["BasicTransformerBlock"]  # diffusers declares none: BLOCK_CLASSES_OF


@pytest.mark.slow
def test_sharded_ema_and_gathered_save(two_process_run):
    """The EMA of sharded weights equals diffusers' EMAModel on full weights; its state dict is the full averages
    and reloads into each rank's shards; the gathered weights save with save_pretrained and load back."""
    output, results = two_process_run
    dit = results["dit_3d"]
    assert dit["ema_max_difference"] < 1e-7
    assert dit["ema_differs_from_weights"]  # decay 0.5 over two steps: not the weights themselves
    assert dit["ema_reload_equal"] and dit["ema_optimization_step"] == 2
    loaded = DiTTransformer3DModel.from_pretrained(output / "dit_3d")
    reference = load_file(output / "dit_3d_reference.safetensors")
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], rtol=0, atol=1e-6)


def test_block_class_names_searches_wrappers_and_rejects_models_without_blocks():
    class TrainingForward(nn.Module):  # like train_vitok's wrapper: no _no_split_modules of its own
        def __init__(self):
            super().__init__()
            self.model = tiny_cct()

    assert block_class_names(TrainingForward()) == ["CCTEmbeddings", "CCTLayer"]
    with pytest.raises(ValueError, match="_no_split_modules"):
        block_class_names(nn.Linear(2, 2))


def test_unsharded_copy_keeps_weights_and_rejects_foreign_keys(tmp_path):
    model = tiny_cct()
    copy = unsharded_copy(model, full_state_dict(model))
    assert copy is not model
    for (name, tensor), other in zip(model.state_dict().items(), copy.state_dict().values()):
        assert torch.equal(tensor, other), name
    with pytest.raises(ValueError, match="state_dict"):
        unsharded_copy(model, {"not.a.key": torch.zeros(1)})


def test_save_pretrained_gathered_saves_a_submodule_of_the_prepared_model(tmp_path):
    """One process (DDP-less): the same call the scripts make under FSDP, here through Accelerate's plain path."""

    class TrainingForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = tiny_cct()

    accelerator = Accelerator(cpu=True)
    prepared = accelerator.prepare(TrainingForward())
    save_pretrained_gathered(accelerator, prepared, tmp_path / "saved", submodule="model")
    loaded = CCTForImageClassification.from_pretrained(tmp_path / "saved")
    for name, tensor in prepared.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_sharded_ema_on_plain_tensors_is_ema_model():
    model = tiny_cct()
    ours, theirs = ShardedEMAModel(model.parameters(), decay=0.9), EMAModel(model.parameters(), decay=0.9)
    for _ in range(3):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        ours.step(model.parameters())
        theirs.step(model.parameters())
    for mine, reference in zip(ours.state_dict()["shadow_params"], theirs.shadow_params):
        assert torch.equal(mine, reference)


def test_freeze_and_trainable_parameters():
    model = tiny_cct().train()
    freeze([model.cct.embeddings])
    assert not model.cct.embeddings.training and model.cct.encoder.training
    trainable = set(map(id, trainable_parameters(model)))
    assert all(id(parameter) not in trainable for parameter in model.cct.embeddings.parameters())
    assert all(id(parameter) in trainable for parameter in model.cct.encoder.parameters())


def test_frozen_model_context_is_a_no_op_without_deepspeed():
    with frozen_model_context():
        model = tiny_cct()
    assert all(parameter.numel() > 0 for parameter in model.parameters())
