"""The launch configs in training/configs/accelerate/ parse with Accelerate's own loader, use only flags that
``accelerate launch`` knows, and the FSDP2 ones name block classes that Accelerate's auto-wrap finds in the model."""

import importlib
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
from accelerate import FullyShardedDataParallelPlugin
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import launch_command_parser
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
from diffusers import DiTTransformer2DModel
from launch import load_training_script

from hf_compact import (
    AutoencoderViTok,
    CCTConfig,
    CCTForImageClassification,
    DiTTransformer3DModel,
    TextCCTConfig,
    TextCCTForSequenceClassification,
)
from hf_compact.losses.discriminator import StyleGANDiscriminator
from hf_compact.recipes.reconstruction import AutoencoderTrainingForward
from hf_compact.training_utils.distributed import block_class_names

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "training" / "configs" / "accelerate"
EXPECTED = {
    "one_gpu.yaml": ("NO", 1, 1),
    "ddp_bf16.yaml": ("MULTI_GPU", 8, 1),
    "fsdp2_cct.yaml": ("FSDP", 8, 1),
    "fsdp2_text_cct.yaml": ("FSDP", 8, 1),
    "fsdp2_vitok.yaml": ("FSDP", 8, 1),
    "fsdp2_dit.yaml": ("FSDP", 8, 1),
    "fsdp2_dit_video.yaml": ("FSDP", 8, 1),
    "deepspeed_zero2.yaml": ("DEEPSPEED", 8, 1),
    "deepspeed_zero3.yaml": ("DEEPSPEED", 8, 1),
    "multi_node_fsdp2_vitok.yaml": ("FSDP", 16, 2),
}


def tiny_models() -> dict[str, torch.nn.Module]:
    return {
        "cct": CCTForImageClassification(CCTConfig(image_size=16, hidden_size=32, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=64)),
        "text_cct": TextCCTForSequenceClassification(TextCCTConfig(
            vocab_size=50, word_embedding_dim=12, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=24)),
        "vitok": AutoencoderViTok(latent_channels=4, patch_size=4, encoder_width=16, encoder_depth=1, encoder_heads=2,
                                  decoder_width=16, decoder_depth=1, decoder_heads=2, sample_size=16),
        "dit": DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                     num_layers=1, sample_size=4, patch_size=1, norm_num_groups=1,
                                     num_embeds_ada_norm=3),
        "dit_video": DiTTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=1),
    }  # fmt: skip


def test_every_config_is_listed():
    assert sorted(path.name for path in CONFIG_DIR.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_with_accelerate_and_uses_known_launch_flags(name):
    config = load_config_from_file(str(CONFIG_DIR / name))
    assert isinstance(config, ClusterConfig)
    distributed_type, num_processes, num_machines = EXPECTED[name]
    assert (config.distributed_type.value, config.num_processes, config.num_machines) == (
        distributed_type, num_processes, num_machines,
    )  # fmt: skip
    assert config.mixed_precision == "bf16"
    launch_flags = {action.dest for action in launch_command_parser()._actions}
    plugin_keys = set(config.fsdp_config) | set(config.deepspeed_config)
    assert plugin_keys <= launch_flags, plugin_keys - launch_flags
    if distributed_type == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == int(name[-6])
        assert not config.deepspeed_config["zero3_init_flag"]


@pytest.mark.parametrize("family", ["cct", "text_cct", "vitok", "dit", "dit_video"])
def test_fsdp2_configs_wrap_exactly_the_models_blocks(family):
    """The FSDP2 plugin built from the file (as `accelerate launch` does) gives an auto-wrap policy that selects the
    model's blocks and nothing else; the names are the ones the model declares (block_class_names)."""
    fsdp = load_config_from_file(str(CONFIG_DIR / f"fsdp2_{family}.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert fsdp["fsdp_activation_checkpointing"] is True
    model = tiny_models()[family]
    if family == "vitok":  # names come from the prepared module's _no_split_modules (see the test below)
        assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp
        model = AutoencoderTrainingForward(model, freeze_encoder=True)
        names = list(model._no_split_modules)
    else:
        names = fsdp["fsdp_transformer_layer_cls_to_wrap"].split(",")
    assert sorted(names) == block_class_names(model)
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy=fsdp["fsdp_auto_wrap_policy"],
        transformer_cls_names_to_wrap=None if family == "vitok" else names,
        state_dict_type=fsdp["fsdp_state_dict_type"], activation_checkpointing=True,
        reshard_after_forward=fsdp["fsdp_reshard_after_forward"],
    )  # fmt: skip
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    wrapped = {type(module).__name__ for module in model.modules() if policy(module)}
    assert wrapped == set(names)
    # diffusers' image DiT reads block 0 after the last block: its blocks must stay gathered until the backward
    assert fsdp["fsdp_reshard_after_forward"] is (family != "dit")


def test_vitok_stage2_discriminator_needs_the_implicit_block_list():
    """Stage 2 prepares the discriminator as a second model: an explicit TransformerBlock list makes Accelerate
    raise on it, the implicit one (_no_split_modules per model) shards it as a single unit."""
    discriminator = StyleGANDiscriminator(16, 8, 16)
    explicit = FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=["TransformerBlock"],
    )
    with pytest.raises(ValueError, match="TransformerBlock"):
        fsdp2_prepare_auto_wrap_policy(explicit, discriminator)
    implicit = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
    policy = fsdp2_prepare_auto_wrap_policy(implicit, discriminator)
    assert not any(policy(module) for module in discriminator.modules())


def test_multi_node_template_names_the_main_machine():
    config = load_config_from_file(str(CONFIG_DIR / "multi_node_fsdp2_vitok.yaml"))
    assert config.main_process_ip and config.main_process_port == 29500 and config.machine_rank == 0


def load_memory_table_script():
    spec = importlib.util.spec_from_file_location("memory_table", ROOT / "benchmarks" / "memory_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks the module up
    spec.loader.exec_module(module)
    return module


def test_scaling_doc_memory_table_is_the_computed_one():
    """The table in docs/scaling.md is the output of benchmarks/memory_table.py (real parameter counts)."""
    memory_table = load_memory_table_script()
    rows = {row.model: row for row in memory_table.memory_rows()}
    assert round(rows["ViTok S-B/16"].parameters / 1e4) == 12886  # 128.86M, as in the README's benchmark row
    five_b = rows["ViTok v2-5B-f16x16"]
    assert five_b.trained < five_b.parameters  # the frozen encoder: weights only
    assert five_b.per_gpu_gib("fsdp")[0] == pytest.approx(five_b.per_gpu_gib("ddp")[0] / 8)
    document = (ROOT / "docs" / "scaling.md").read_text()
    table = re.search(r"<!-- memory-table:[^>]*-->\n(.*?)\n<!-- /memory-table -->", document, re.S).group(1)
    assert table == memory_table.markdown_table(list(rows.values()))


def test_scaling_doc_commands_parse(monkeypatch):
    document = (ROOT / "docs" / "scaling.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", document, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    commands = [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]
    assert len(commands) == 7
    monkeypatch.chdir(ROOT)
    for words in commands:
        config_file = words[words.index("--config_file") + 1]
        assert load_config_from_file(str(ROOT / config_file)).distributed_type.value in ("MULTI_GPU", "FSDP")
        index = next(i for i, word in enumerate(words) if word.endswith(".py"))
        arguments = words[index + 1 :]
        assert (ROOT / arguments[arguments.index("--config") + 1]).is_file()
        load_training_script(Path(words[index]).stem).parse_args(arguments)  # argparse exits on a bad flag
