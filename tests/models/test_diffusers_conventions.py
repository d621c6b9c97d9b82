"""AutoencoderViTok and DiTTransformer3DModel meet diffusers' model conventions, checked as diffusers' users call them:
regional compilation (`_repeated_blocks`), attention backends (`set_attention_backend`), layerwise casting, group
offloading and LoRA adapters (`PeftAdapterMixin`)."""

import copy

import pytest
import torch
from diffusers.hooks.group_offloading import _is_group_offload_enabled
from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry
from peft import LoraConfig
from torch._dynamo.testing import CompileCounterWithBackend

from hf_compact.layers import Attention
from hf_compact.vitok import AutoencoderViTok

# PyTorch SDPA kernels that run on CPU, reached through diffusers' dispatcher.
CPU_BACKENDS = ["native", "_native_math", "_native_flash", "flex"]


@pytest.fixture(autouse=True)
def restore_attention_backend():
    """`ModelMixin.set_attention_backend` also sets diffusers' process-wide active backend: put it back."""
    active = _AttentionBackendRegistry._active_backend
    torch._dynamo.reset()
    yield
    _AttentionBackendRegistry.set_active_backend(active)
    torch._dynamo.reset()


@pytest.fixture(params=["vitok", "dit_3d"])
def model_and_run(request, tiny_vitok, tiny_dit_3d):
    """A tiny model and a function that runs it on fixed inputs (ViTok: encode + decode; DiT: one denoiser call)."""
    if request.param == "vitok":
        pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
        return tiny_vitok(decoder_depth=2), lambda model: model(pixels).sample
    transformer = tiny_dit_3d(sample_size=2, sample_frames=2)
    torch.manual_seed(1)
    for parameter in transformer.parameters():  # leave the adaLN-Zero init, whose output is exactly zero
        torch.nn.init.normal_(parameter, std=0.1)
    latents = torch.randn(2, 4, 2, 2, 2, generator=torch.Generator().manual_seed(2))
    timestep, class_labels = torch.tensor([10, 500]), torch.tensor([0, 3])
    return transformer, lambda model: model(latents, timestep, class_labels).sample


def attention_modules(model: torch.nn.Module) -> list[Attention]:
    return [module for module in model.modules() if isinstance(module, Attention)]


@torch.no_grad()
def test_compile_repeated_blocks_matches_eager(model_and_run):
    model, run = model_and_run
    expected = run(model)
    counter = CompileCounterWithBackend("aot_eager")  # traces like inductor, without its slow CPU codegen
    model.compile_repeated_blocks(fullgraph=True, backend=counter)
    blocks = [module for module in model.modules() if type(module).__name__ in model._repeated_blocks]
    assert blocks and all(block._compiled_call_impl is not None for block in blocks)
    torch.testing.assert_close(run(model), expected, atol=1e-5, rtol=1e-5)
    assert counter.frame_count >= 1  # the blocks really ran compiled (a graph break would have raised)


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@torch.no_grad()
def test_attention_backends_that_run_on_cpu_give_the_same_outputs(model_and_run, backend):
    model, run = model_and_run
    expected = run(model)
    model.set_attention_backend(backend)
    assert {module.processor._attention_backend for module in attention_modules(model)} == {backend}
    output = run(model)
    if backend == "native":  # the default path: bit for bit
        torch.testing.assert_close(output, expected, atol=0, rtol=0)
    else:
        torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_set_attention_backend_routes_every_attention_through_that_backend(model_and_run, monkeypatch):
    model, run = model_and_run
    expected = run(model)
    math_backend = _AttentionBackendRegistry._backends[AttentionBackendName._NATIVE_MATH]
    calls = []

    def spy(**kwargs):
        calls.append(kwargs["query"].shape)
        return math_backend(**kwargs)

    monkeypatch.setitem(_AttentionBackendRegistry._backends, AttentionBackendName._NATIVE_MATH, spy)
    run(model)
    assert calls == []  # the default backend does not call it
    model.set_attention_backend("_native_math")
    _AttentionBackendRegistry.set_active_backend(AttentionBackendName.NATIVE)  # only the modules' choice is left
    torch.testing.assert_close(run(model), expected, atol=1e-5, rtol=1e-5)
    assert len(calls) == len(attention_modules(model)) > 0
    assert all(len(shape) == 4 for shape in calls)  # (B, N, heads, head_dim), the dispatcher's layout
    model.reset_attention_backend()
    run(model)
    assert len(calls) == len(attention_modules(model))


@torch.no_grad()
def test_layerwise_casting_stores_bfloat16_and_computes_float32(model_and_run):
    model, run = model_and_run
    expected = run(model)
    model.enable_layerwise_casting(storage_dtype=torch.bfloat16, compute_dtype=torch.float32)
    stored = {name: parameter.dtype for name, parameter in model.named_parameters()}
    assert all(dtype == torch.bfloat16 for name, dtype in stored.items() if ".attn." in name or ".mlp." in name)
    assert all(dtype == torch.float32 for name, dtype in stored.items() if "norm" in name)
    assert model.dtype == torch.float32
    output = run(model)
    assert output.dtype == torch.float32
    # Exactly the float32 model with the stored weights rounded to bfloat16; within bfloat16 rounding of the original.
    reference = type(model).from_config(model.config).eval()
    reference.load_state_dict({name: tensor.float() for name, tensor in model.state_dict().items()})
    torch.testing.assert_close(output, run(reference), atol=0, rtol=0)
    torch.testing.assert_close(output, expected, atol=0.05, rtol=0.05)
    assert not torch.equal(output, expected)


@pytest.mark.parametrize("offload_type", ["block_level", "leaf_level"])
@torch.no_grad()
def test_group_offloading_on_cpu_gives_the_same_outputs(model_and_run, offload_type):
    model, run = model_and_run
    expected = run(model)
    cpu = torch.device("cpu")
    options = {"num_blocks_per_group": 1} if offload_type == "block_level" else {}
    model.enable_group_offload(onload_device=cpu, offload_device=cpu, offload_type=offload_type, **options)
    assert _is_group_offload_enabled(model)
    torch.testing.assert_close(run(model), expected, atol=0, rtol=0)


# LoRA targets, as a user would write them: ViTok's decoder attention projections; every linear of the DiT blocks.
LORA_TARGETS = {
    "AutoencoderViTok": r"decoder\..*\.attn\.(qkv|proj)",
    "DiTTransformer3DModel": ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"],
}


@torch.no_grad()
def test_lora_adapter_trains_only_itself_and_saves_and_loads_back_equal(model_and_run, tmp_path):
    model, run = model_and_run
    base_output = run(model)
    base_state = copy.deepcopy(model.state_dict())
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=LORA_TARGETS[type(model).__name__]))
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    if isinstance(model, AutoencoderViTok):
        assert all(name.startswith("decoder.") and ".attn." in name for name in trainable)
    else:
        assert {name.split(".")[2] for name in trainable} == {"attn", "mlp"}
    torch.testing.assert_close(run(model), base_output, atol=0, rtol=0)  # LoRA B starts at zero
    for name, parameter in model.named_parameters():
        if ".lora_B." in name:  # as after some training
            torch.nn.init.normal_(parameter, std=0.1, generator=torch.Generator().manual_seed(len(name)))
    adapted_output = run(model)
    assert not torch.allclose(adapted_output, base_output)

    model.save_lora_adapter(tmp_path)
    fresh = type(model).from_config(model.config).eval()
    fresh.load_state_dict(base_state)
    fresh.load_lora_adapter(tmp_path, prefix=None, weight_name="pytorch_lora_weights.safetensors")
    torch.testing.assert_close(run(fresh), adapted_output, atol=0, rtol=0)
    fresh.fuse_lora()
    fresh.unload_lora()
    assert not any("lora" in name for name, _ in fresh.named_parameters())
    torch.testing.assert_close(run(fresh), adapted_output, atol=1e-5, rtol=1e-5)
