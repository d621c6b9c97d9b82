"""CCT / CVT / ViT-Lite as transformers models: shapes, numerics, transformers integration, errors."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image
from transformers import (
    AttentionInterface,
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    Trainer,
    TrainingArguments,
    default_data_collator,
    pipeline,
)
from transformers.testing_utils import CaptureLogger

from hf_compact import CCT_PRESETS, CCTConfig, CCTForImageClassification, CCTImageProcessor, CCTModel
from hf_compact.cct import CCTEncoder, CCTSequencePooling, sinusoidal_position_table
from hf_compact.cct.image_processing_cct import CIFAR10_MEAN, CIFAR10_STD
from hf_compact.cct.modeling_cct import CCTDropPath

# Tiny versions of each family: (config overrides, tokens for a 16x16 input, class token?)
FAMILIES = {
    "vit_lite": ({"tokenizer_type": "patch", "patch_size": 4, "pooling_type": "cls"}, 16, True),
    "cvt": ({"tokenizer_type": "patch", "patch_size": 4, "pooling_type": "seq_pool"}, 16, False),
    "cct_1_conv": ({"tokenizer_type": "conv", "num_conv_layers": 1}, 64, False),
    "cct_2_conv": (
        {"tokenizer_type": "conv", "num_conv_layers": 2, "conv_intermediate_channels": 8},
        16,
        False,
    ),
}


def tiny_config(family: str = "cct_2_conv", **overrides) -> CCTConfig:
    arguments = {
        "image_size": 16,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "num_labels": 3,
        **FAMILIES[family][0],
        **overrides,
    }
    return CCTConfig(**arguments)


def deterministic_config(family: str = "cct_2_conv", **overrides) -> CCTConfig:
    """No dropout and no stochastic depth, so that train-mode forwards are reproducible."""
    return tiny_config(
        family, attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.0, drop_path_rate=0.0, **overrides
    )


def tiny_model(family: str = "cct_2_conv", **overrides) -> CCTForImageClassification:
    torch.manual_seed(0)
    return CCTForImageClassification(tiny_config(family, **overrides)).eval()


def images(batch_size: int = 2, size: int = 16) -> torch.Tensor:
    return torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(1))


# --- shapes and numerics -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position_embedding_type", ["learnable", "sine", "none"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_forward_shapes(family, position_embedding_type):
    model = tiny_model(family, position_embedding_type=position_embedding_type)
    _, num_tokens, has_class_token = FAMILIES[family]

    with torch.no_grad():
        base_outputs = model.cct(images())
        logits = model(images()).logits

    assert base_outputs.last_hidden_state.shape == (2, num_tokens + has_class_token, 32)
    assert base_outputs.pooler_output.shape == (2, 32)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()


def test_class_token_model_pools_the_class_token():
    model = tiny_model("vit_lite")
    with torch.no_grad():
        outputs = model.cct(images())
    torch.testing.assert_close(outputs.pooler_output, outputs.last_hidden_state[:, 0])


def test_loss_is_cross_entropy_of_labels():
    model = tiny_model()
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        outputs = model(images(), labels=labels)
    torch.testing.assert_close(outputs.loss, torch.nn.functional.cross_entropy(outputs.logits, labels))


def test_return_dict_false_gives_tuple():
    model = tiny_model()
    with torch.no_grad():
        logits = model(images()).logits
        outputs = model(images(), labels=torch.tensor([1, 2]), return_dict=False)
    assert isinstance(outputs, tuple) and len(outputs) == 2
    torch.testing.assert_close(outputs[1], logits)


def test_sinusoidal_table_follows_official_formula():
    table = sinusoidal_position_table(5, 8)
    assert table.shape == (5, 8)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 4))
    # position 3, channel pair 1 (channels 2 and 3): angle = 3 / 10000 ** (2 / 8)
    angle = 3 / 10000 ** (2 / 8)
    torch.testing.assert_close(table[3, 2:4], torch.tensor([math.sin(angle), math.cos(angle)]))


def test_sine_position_embeddings_are_a_fixed_buffer():
    model = tiny_model("vit_lite", position_embedding_type="sine")
    embeddings = model.cct.embeddings
    assert "cct.embeddings.position_embeddings" not in dict(model.named_parameters())
    assert "cct.embeddings.position_embeddings" not in model.state_dict()
    torch.testing.assert_close(embeddings.position_embeddings[0], sinusoidal_position_table(17, 32))


def test_official_initialisation():
    model = CCTForImageClassification(tiny_config("vit_lite", hidden_size=64, image_size=64, patch_size=2))
    embeddings = model.cct.embeddings
    layer = model.cct.encoder.layers[0]
    assert embeddings.position_embeddings.std().item() == pytest.approx(0.2, rel=0.05)
    assert torch.count_nonzero(embeddings.class_token) == 0
    assert layer.mlp.fc1.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.count_nonzero(layer.mlp.fc1.bias) == 0
    assert torch.equal(layer.layernorm_after.weight, torch.ones(64))
    # kaiming normal (fan_in, gain sqrt(2)) on the tokenizer convolution
    convolution = embeddings.tokenizer.convolutions[0]
    expected_std = math.sqrt(2 / convolution.weight[0].numel())
    assert convolution.weight.std().item() == pytest.approx(expected_std, rel=0.15)


def test_drop_path_rates_increase_linearly():
    model = CCTModel(tiny_config(num_hidden_layers=5, drop_path_rate=0.2))
    rates = [layer.drop_path.drop_prob for layer in model.encoder.layers]
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])


# --- presets ----------------------------------------------------------------------------------------------------

# Counts of the official builders (SHI-Labs/Compact-Transformers): learnable = all parameters; sine = trainable
# parameters (the table is a buffer).
PRESET_PARAMETER_COUNTS = {
    "vit_2_4_32": 214_666, "vit_2_4_32_sine": 206_346, "vit_4_4_32": 413_066, "vit_4_4_32_sine": 404_746,
    "vit_6_4_32": 3_190_538, "vit_6_4_32_sine": 3_173_898, "vit_7_4_32": 3_716_874, "vit_7_4_32_sine": 3_700_234,
    "cvt_2_4_32": 214_539, "cvt_2_4_32_sine": 206_347, "cvt_4_4_32": 412_939, "cvt_4_4_32_sine": 404_747,
    "cvt_6_4_32": 3_190_283, "cvt_6_4_32_sine": 3_173_899, "cvt_7_4_32": 3_716_619, "cvt_7_4_32_sine": 3_700_235,
    "cct_2_3x2_32": 283_723, "cct_2_3x2_32_sine": 275_531, "cct_4_3x2_32": 482_123, "cct_4_3x2_32_sine": 473_931,
    "cct_6_3x1_32": 3_233_803, "cct_6_3x1_32_sine": 3_168_267,
    "cct_6_3x2_32": 3_326_923, "cct_6_3x2_32_sine": 3_310_539,
    "cct_7_3x1_32": 3_760_139, "cct_7_3x1_32_sine": 3_694_603,
    "cct_7_3x1_32_c100": 3_783_269, "cct_7_3x1_32_sine_c100": 3_717_733,
    "cct_7_3x2_32": 3_853_259, "cct_7_3x2_32_sine": 3_836_875,
    "cct_7_7x2_224": 4_573_735, "cct_7_7x2_224_sine": 4_523_559,
    "cct_14_7x2_224": 22_367_273, "cct_14_7x2_384": 22_513_193, "cct_14_7x2_384_fl": 22_167_463,
}  # fmt: skip


def test_every_official_preset_is_registered():
    assert set(CCT_PRESETS) == set(PRESET_PARAMETER_COUNTS)


@pytest.mark.parametrize("name", sorted(PRESET_PARAMETER_COUNTS))
def test_preset_parameter_count_is_official(name):
    with torch.device("meta"):
        model = CCTForImageClassification(CCTConfig.from_preset(name))
    assert model.num_parameters() == PRESET_PARAMETER_COUNTS[name]


def test_preset_overrides_and_unknown_name():
    config = CCTConfig.from_preset("cct_7_3x1_32", id2label={0: "cat", 1: "dog"}, drop_path_rate=0.0)
    assert (config.num_labels, config.drop_path_rate, config.num_hidden_layers) == (2, 0.0, 7)
    with pytest.raises(ValueError, match="Unknown CCT preset 'cct_99'"):
        CCTConfig.from_preset("cct_99")


# --- transformers integration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("position_embedding_type", ["learnable", "sine"])
def test_save_and_load_give_identical_logits(tmp_path, position_embedding_type):
    model = tiny_model("vit_lite", position_embedding_type=position_embedding_type)
    model.save_pretrained(tmp_path)
    reloaded = CCTForImageClassification.from_pretrained(tmp_path).eval()

    assert (tmp_path / "model.safetensors").is_file()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images()).logits, model(images()).logits, rtol=0, atol=0)


def test_auto_classes_and_pipeline_load_saved_model_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_model(id2label={0: "cat", 1: "dog", 2: "bird"})
    model.save_pretrained(tmp_path)
    CCTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path)

    assert isinstance(AutoConfig.from_pretrained(tmp_path), CCTConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), CCTModel)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path), CCTForImageClassification)
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path), CCTImageProcessor)

    classifier = pipeline("image-classification", model=str(tmp_path))
    predictions = classifier(Image.new("RGB", (40, 24), color=(200, 30, 60)))
    assert sorted(prediction["label"] for prediction in predictions) == ["bird", "cat", "dog"]
    assert sum(prediction["score"] for prediction in predictions) == pytest.approx(1.0, abs=1e-4)


def test_trainer_reduces_loss(tmp_path):
    torch.manual_seed(0)
    model = CCTForImageClassification(deterministic_config(num_labels=2))
    generator = np.random.default_rng(0)
    labels = np.arange(32) % 2
    pixel_values = generator.normal(size=(32, 3, 16, 16)).astype(np.float32) + 2 * labels[:, None, None, None] - 1
    dataset = Dataset.from_dict({"pixel_values": pixel_values, "label": labels}).with_format("torch")
    arguments = TrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        per_device_train_batch_size=16,
        max_steps=10,
        learning_rate=5e-3,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
    )

    trainer = Trainer(model=model, args=arguments, train_dataset=dataset, data_collator=default_data_collator)
    trainer.train()

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


def test_eager_and_sdpa_attention_agree():
    model = tiny_model()
    with torch.no_grad():
        sdpa_logits = model(images()).logits
        model.set_attn_implementation("eager")
        eager_logits = model(images()).logits
    torch.testing.assert_close(eager_logits, sdpa_logits, rtol=1e-5, atol=1e-5)


def attention_spy(monkeypatch, name: str) -> list:
    """Counts the calls of the registered attention function `name` (which keeps working)."""
    calls, registered = [], AttentionInterface._global_mapping[name]
    monkeypatch.setitem(
        AttentionInterface._global_mapping,
        name,
        lambda *args, **kwargs: calls.append(1) or registered(*args, **kwargs),
    )
    return calls


def test_training_with_attention_dropout_goes_through_the_chosen_attention_and_sdpa_equals_eager(monkeypatch):
    # Training with attention dropout on the CPU runs the registered "sdpa" function, as every other forward does
    # (no private kernel takes over); it draws the same mask as "eager", so a seeded step gives the same gradients.
    torch.manual_seed(0)
    model = CCTForImageClassification(tiny_config(attention_probs_dropout_prob=0.5, drop_path_rate=0.3)).train()
    labels = torch.tensor([0, 2])

    def loss_and_gradients():
        model.zero_grad()
        torch.manual_seed(3)
        loss = model(images(), labels=labels).loss
        loss.backward()
        return loss.detach(), {name: parameter.grad.clone() for name, parameter in model.named_parameters()}

    sdpa_calls = attention_spy(monkeypatch, "sdpa")
    sdpa_loss, sdpa_gradients = loss_and_gradients()
    assert len(sdpa_calls) == model.config.num_hidden_layers
    model.set_attn_implementation("eager")
    eager_loss, eager_gradients = loss_and_gradients()
    assert len(sdpa_calls) == model.config.num_hidden_layers

    torch.testing.assert_close(sdpa_loss, eager_loss)
    for name, gradient in eager_gradients.items():
        torch.testing.assert_close(sdpa_gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)


def test_attention_implementation_registered_by_the_user_is_used(monkeypatch):
    calls = []

    def scaled_dot_product(module, query, key, value, attention_mask, **kwargs):
        calls.append(kwargs["dropout"])
        return AttentionInterface._global_mapping["sdpa"](module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, "counting_sdpa", scaled_dot_product)
    model = CCTForImageClassification(tiny_config(attention_probs_dropout_prob=0.25)).train()
    model.set_attn_implementation("counting_sdpa")
    model(images())
    model.eval()(images())
    assert calls == [0.25, 0.25, 0.0, 0.0]  # two layers, training then eval


def test_drop_path_drops_whole_samples_and_never_writes_into_its_input():
    drop_path = CCTDropPath(0.5).train()
    branch = torch.randn(64, 3, 4)
    original = branch.clone()
    torch.manual_seed(0)
    dropped = drop_path(branch)
    kept = dropped.flatten(1).ne(0).all(1)
    assert 0 < kept.sum() < 64 and not dropped[~kept].any()
    torch.testing.assert_close(dropped[kept], branch[kept] * 2)  # rescaled by 1 / keep_prob
    assert drop_path.eval()(branch) is branch
    torch.testing.assert_close(branch, original, rtol=0, atol=0)


@pytest.mark.parametrize("grad_enabled", [False, True])
def test_no_module_writes_into_a_tensor_another_module_returned(grad_enabled):
    """Every submodule's output keeps its value to the end of the forward (no residual added in place, no in-place
    activation when gradients are off), so hooks and recorded states see what the module returned."""
    torch.manual_seed(0)
    model = CCTForImageClassification(deterministic_config("cct_2_conv")).eval()
    returned = []

    def record(module, args, output):
        for tensor in output if isinstance(output, tuple) else (output,):
            if isinstance(tensor, torch.Tensor):
                returned.append((module, tensor, tensor.detach().clone()))

    for module in model.modules():
        module.register_forward_hook(record)
    pixel_values = images()
    pixel_values_before = pixel_values.clone()
    with torch.set_grad_enabled(grad_enabled):
        model(pixel_values)
    overwritten = [type(module).__name__ for module, tensor, value in returned if not torch.equal(tensor, value)]
    assert not overwritten
    torch.testing.assert_close(pixel_values, pixel_values_before, rtol=0, atol=0)


def test_outputs_do_not_depend_on_whether_gradients_are_on():
    torch.manual_seed(0)
    model = CCTForImageClassification(deterministic_config("cct_2_conv")).eval()
    with torch.no_grad():
        without_grad = model(images(), output_hidden_states=True)
    with_grad = model(images(), output_hidden_states=True)
    torch.testing.assert_close(without_grad.logits, with_grad.logits, rtol=0, atol=0)
    for recorded, expected in zip(without_grad.hidden_states, with_grad.hidden_states, strict=True):
        torch.testing.assert_close(recorded, expected, rtol=0, atol=0)


def test_layer_is_the_official_post_attention_norm_block():
    torch.manual_seed(0)
    layer = CCTForImageClassification(deterministic_config("cct_2_conv")).cct.encoder.layers[0].train()
    hidden_states = torch.randn(2, 16, 32, requires_grad=True)
    layer(hidden_states).square().sum().backward()
    gradients = [hidden_states.grad] + [parameter.grad for parameter in layer.parameters()]
    layer.zero_grad()
    hidden_states.grad = None

    def reference_layer(tokens: torch.Tensor) -> torch.Tensor:
        attention_output, _ = layer.attention(layer.layernorm_before(tokens))
        tokens = layer.layernorm_after(tokens + attention_output)
        mlp = layer.mlp
        return tokens + mlp.fc2(torch.nn.functional.gelu(mlp.fc1(tokens)))

    reference_layer(hidden_states).square().sum().backward()
    expected = [hidden_states.grad] + [parameter.grad for parameter in layer.parameters()]
    for gradient, reference in zip(gradients, expected, strict=True):
        torch.testing.assert_close(gradient, reference)


def test_convolutional_tokenizer_matches_conv_relu_pool_order_with_gradients():
    model = tiny_model("cct_2_conv")
    tokenizer = model.cct.embeddings.tokenizer
    pixel_values = images().requires_grad_()
    tokens = tokenizer(pixel_values)
    features = pixel_values
    for convolution in tokenizer.convolutions:  # the paper's order: conv -> ReLU -> max-pool, channels-first
        features = tokenizer.pooling(torch.relu(convolution(features)))
    expected = features.flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens, expected)
    grad_output = torch.randn_like(tokens)
    torch.testing.assert_close(
        torch.autograd.grad(tokens, pixel_values, grad_output)[0],
        torch.autograd.grad(expected, pixel_values, grad_output)[0],
    )


def test_output_attentions_and_hidden_states():
    model = tiny_model("vit_lite")
    model.set_attn_implementation("eager")
    with torch.no_grad():
        outputs = model(images(), output_attentions=True, output_hidden_states=True)

    assert len(outputs.attentions) == 2 and len(outputs.hidden_states) == 3
    assert all(attention.shape == (2, 2, 17, 17) for attention in outputs.attentions)
    assert all(hidden_state.shape == (2, 17, 32) for hidden_state in outputs.hidden_states)
    torch.testing.assert_close(outputs.attentions[0].sum(-1), torch.ones(2, 2, 17))


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = CCTForImageClassification(deterministic_config()).train()
    labels = torch.tensor([0, 2])

    def gradients():
        model.zero_grad()
        model(images(), labels=labels).loss.backward()
        return {name: parameter.grad.clone() for name, parameter in model.named_parameters()}

    reference = gradients()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    checkpointed = gradients()
    for name, gradient in reference.items():
        torch.testing.assert_close(checkpointed[name], gradient, msg=name)


# --- position-embedding interpolation ------------------------------------------------------------------------------


def test_learnable_position_embeddings_are_resized_bilinearly():
    model = tiny_model("vit_lite")
    embeddings = model.cct.embeddings
    table = embeddings.position_embeddings.detach()

    resized = embeddings.interpolate_pos_encoding((6, 6)).detach()

    grid = table[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(6, 6), mode="bilinear", align_corners=False)
    torch.testing.assert_close(resized[:, 0], table[:, 0])  # class-token row kept
    torch.testing.assert_close(resized[:, 1:], expected.flatten(2).transpose(1, 2))
    with torch.no_grad():
        logits = model(images(size=24), interpolate_pos_encoding=True).logits
        same_size = model(images(), interpolate_pos_encoding=True).logits
        torch.testing.assert_close(same_size, model(images()).logits)
    assert logits.shape == (2, 3)


def test_sine_position_embeddings_are_recomputed_for_new_resolution():
    model = tiny_model("cvt", position_embedding_type="sine")
    resized = model.cct.embeddings.interpolate_pos_encoding((8, 8))
    torch.testing.assert_close(resized[0], sinusoidal_position_table(64, 32))
    with torch.no_grad():
        assert model(images(size=32), interpolate_pos_encoding=True).logits.shape == (2, 3)


def test_other_resolution_without_interpolation_suggests_it():
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        tiny_model()(images(size=32))


# --- padding mask (used by the text variants) -----------------------------------------------------------------------


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_padding_mask_hides_padded_tokens(attn_implementation):
    config = tiny_config()
    config._attn_implementation = attn_implementation
    torch.manual_seed(0)
    encoder, pooling = CCTEncoder(config).eval(), CCTSequencePooling(config)
    tokens = torch.randn(2, 7, 32)
    padding_mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    noisy_padding = tokens.clone()
    noisy_padding[1, 4:] = 100 * torch.randn(3, 32)

    with torch.no_grad():
        hidden_states = encoder(tokens, padding_mask)
        hidden_states_noisy = encoder(noisy_padding, padding_mask)
        unpadded = encoder(tokens[1:, :4])
        pooled = pooling(hidden_states, padding_mask)
        pooled_noisy = pooling(hidden_states_noisy, padding_mask)
        pooled_unpadded = pooling(unpadded)

    torch.testing.assert_close(hidden_states_noisy[:, :4], hidden_states[:, :4])
    torch.testing.assert_close(hidden_states_noisy[0], hidden_states[0])
    torch.testing.assert_close(hidden_states[1, :4], unpadded[0])
    torch.testing.assert_close(pooled_noisy, pooled)
    torch.testing.assert_close(pooled[1], pooled_unpadded[0])
    # a single layer takes the (batch, num_tokens) mask directly as well
    layer = encoder.layers[0]
    with torch.no_grad():
        torch.testing.assert_close(layer(noisy_padding, padding_mask)[1, :4], layer(tokens[1:, :4])[0])


# --- bad input ----------------------------------------------------------------------------------------------------


PIXEL_VALUES = r"`pixel_values` must be a floating-point torch.Tensor of shape \(batch_size, 3, height, width\), got "


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match=PIXEL_VALUES + r"shape \(2, 1, 16, 16\)\.$"):
        tiny_model()(torch.randn(2, 1, 16, 16))


def test_wrong_rank_raises():
    with pytest.raises(ValueError, match=PIXEL_VALUES + r"shape \(3, 16, 16\)\.$"):
        tiny_model()(torch.randn(3, 16, 16))


def test_integer_or_missing_pixel_values_raise_type_errors():
    with pytest.raises(TypeError, match=PIXEL_VALUES + r"dtype torch.uint8\.$"):
        tiny_model()(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(TypeError, match=PIXEL_VALUES + r"NoneType\.$"):
        tiny_model()()


def test_image_not_divisible_by_patch_raises():
    with pytest.raises(ValueError, match="divisible by the patch size 4, got 18x18"):
        tiny_model("cvt")(images(size=18), interpolate_pos_encoding=True)


def test_image_too_small_for_tokenizer_raises():
    model = tiny_model(conv_padding=0, position_embedding_type="none")
    with pytest.raises(ValueError, match="4x4 pixels are too small for the 2-layer convolutional tokenizer"):
        model(images(size=4))


@pytest.mark.parametrize("bad_label", [3, -1])
def test_label_out_of_range_raises(bad_label):
    with pytest.raises(ValueError, match=rf"`labels` must be class indices in \[0, 3\).*got \[{bad_label}\]"):
        tiny_model()(images(), labels=torch.tensor([0, bad_label]))


def test_empty_batch_gives_empty_outputs():
    model = tiny_model()
    with torch.no_grad():
        output = model(images(batch_size=0), output_hidden_states=True)
    assert output.logits.shape == (0, 3)
    assert all(hidden_states.shape[0] == 0 for hidden_states in output.hidden_states)


def test_numpy_pixel_values_raise_type_error():
    with pytest.raises(TypeError, match=PIXEL_VALUES + r"ndarray\.$"):
        tiny_model()(images().numpy())


CLASS_INDICES = r"`labels` must be an int64 torch.Tensor of shape \(2,\), got "


def test_labels_of_another_batch_size_raise():
    with pytest.raises(ValueError, match=CLASS_INDICES + r"shape \(3,\)\.$"):
        tiny_model()(images(), labels=torch.tensor([0, 1, 2]))


def test_float_class_labels_raise():
    with pytest.raises(TypeError, match=CLASS_INDICES + r"dtype torch.float32\.$"):
        tiny_model()(images(), labels=torch.tensor([0.0, 1.0]))
    # float multi-hot targets of the right shape are multi-label classification, as in transformers
    targets = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    output = tiny_model()(images(), labels=targets)
    torch.testing.assert_close(
        output.loss, torch.nn.functional.binary_cross_entropy_with_logits(output.logits, targets)
    )
    with pytest.raises(ValueError, match=r"`labels` must be a floating-point torch.Tensor of shape \(2, 3\), got "):
        tiny_model()(images(), labels=targets[:, :2])


def test_labels_that_are_not_a_tensor_raise():
    with pytest.raises(TypeError, match=CLASS_INDICES + r"list\.$"):
        tiny_model()(images(), labels=[0, 1])


def test_regression_labels_are_one_float_per_sample():
    model = tiny_model(num_labels=1)
    output = model(images(), labels=torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(
        output.loss, torch.nn.functional.mse_loss(output.logits[:, 0], torch.tensor([0.5, -1.0]))
    )
    with pytest.raises(TypeError, match=r"`labels` must be a floating-point torch.Tensor of shape \(2,\), got dtype"):
        model(images(), labels=torch.tensor([1, 0]))


# --- input embeddings (PEFT with gradient checkpointing) ------------------------------------------------------------


def test_input_embeddings_are_the_convolutional_embeddings():
    model = tiny_model()
    assert model.get_input_embeddings() is model.cct.embeddings.tokenizer
    assert tiny_model("cvt").get_input_embeddings().convolutions[0].kernel_size == (4, 4)


def frozen_checkpointed_model(enable_input_grads: bool) -> CCTForImageClassification:
    """All weights frozen but the first layer's MLP (an adapter's stand-in), gradient checkpointing on."""
    model = CCTForImageClassification(deterministic_config()).train()
    model.requires_grad_(False)
    model.cct.encoder.layers[0].mlp.fc1.weight.requires_grad_(True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    if enable_input_grads:
        model.enable_input_require_grads()
    return model


def test_enable_input_require_grads_lets_gradients_through_checkpointed_layers():
    torch.manual_seed(0)
    model = frozen_checkpointed_model(enable_input_grads=True)
    captured = {}
    model.get_input_embeddings().register_forward_hook(lambda module, args, output: captured.update(tokens=output))
    model(images(), labels=torch.tensor([0, 1])).loss.backward()
    gradient = model.cct.encoder.layers[0].mlp.fc1.weight.grad
    assert captured["tokens"].requires_grad
    assert gradient is not None and gradient.abs().sum() > 0
    # Without it, reentrant checkpointing sees no input requiring grad and the trainable weight gets nothing.
    torch.manual_seed(0)
    model = frozen_checkpointed_model(enable_input_grads=False)
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
        loss = model(images(), labels=torch.tensor([0, 1])).loss
    assert not loss.requires_grad


def test_invalid_config_values_raise():
    with pytest.raises(ValueError, match="`position_embedding_type` must be one of"):
        CCTConfig(position_embedding_type="rope")
    with pytest.raises(ValueError, match="`hidden_size` must be divisible by `num_attention_heads`"):
        CCTConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="`image_size` must be divisible by `patch_size`"):
        CCTConfig(tokenizer_type="patch", image_size=30, patch_size=4)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"hidden_size": "32"}, TypeError, "`hidden_size` must be an int, got str '32'."),
        ({"hidden_size": 32.0}, TypeError, "`hidden_size` must be an int, got float 32.0."),
        ({"image_size": True}, TypeError, "`image_size` must be an int, got bool True."),
        ({"conv_stride": "2"}, TypeError, "`conv_stride` must be an int or None, got str '2'."),
        ({"drop_path_rate": "0.1"}, TypeError, "`drop_path_rate` must be a number, got str '0.1'."),
        ({"pooling_type": None}, TypeError, "`pooling_type` must be a string, got NoneType None."),
        ({"num_hidden_layers": -1}, ValueError, "`num_hidden_layers` must be at least 1, got -1."),
        ({"num_conv_layers": 0}, ValueError, "`num_conv_layers` must be at least 1, got 0."),
        ({"conv_padding": -1}, ValueError, "`conv_padding` must be non-negative, got -1."),
        ({"attention_probs_dropout_prob": 1.5}, ValueError, r"`attention_probs_dropout_prob` must be in \[0, 1\)"),
        ({"drop_path_rate": 1}, ValueError, r"`drop_path_rate` must be in \[0, 1\), got 1."),
        ({"layer_norm_eps": 0.0}, ValueError, "`layer_norm_eps` must be positive, got 0.0."),
        ({"hidden_act": "gleu"}, ValueError, r"`hidden_act` must be one of \[.*'gelu'.*\], got 'gleu'."),
        ({"num_labels": 0}, ValueError, "`num_labels` must be at least 1"),
        ({"id2label": {}}, ValueError, "`num_labels` must be at least 1"),
        ({"id2label": {0: 1, 1: 2}}, TypeError, r"`id2label` must map class ids to strings, got 1 \(int\)."),
    ],
)
def test_config_fields_are_type_and_range_checked(arguments, error, message):
    with pytest.raises(error, match=message):
        CCTConfig(**arguments)


def test_checked_config_still_round_trips_through_transformers(tmp_path):
    config = CCTConfig(drop_path_rate=0, id2label={0: "cat", 1: "dog"}, conv_stride=None)  # an int is a valid float
    assert config.drop_path_rate == 0 and config.conv_stride == 1
    config.save_pretrained(tmp_path)
    reloaded = CCTConfig.from_pretrained(tmp_path, hidden_dropout_prob=0.2)
    assert reloaded.id2label == {0: "cat", 1: "dog"} and reloaded.hidden_dropout_prob == 0.2
    assert CCTConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    without_path = {key: value for key, value in config.to_dict().items() if key != "_name_or_path"}
    assert {
        key: value for key, value in AutoConfig.from_pretrained(tmp_path).to_dict().items() if key != "_name_or_path"
    } == without_path


PAPER_NAMES = {"cct": "CCT-{layers}/{kernel}x{convs}", "cvt": "CVT-{layers}/4", "vit": "ViT-Lite-{layers}/4"}


@pytest.mark.parametrize("name", sorted(CCT_PRESETS))
def test_every_preset_knows_its_paper_name(name):
    family, layers, tokenizer = name.split("_")[:3]
    kernel, _, convs = tokenizer.partition("x")
    assert CCTConfig.from_preset(name).paper_name == PAPER_NAMES[family].format(
        layers=layers, kernel=kernel, convs=convs
    )


def test_paper_name_follows_the_config_and_is_read_only():
    assert CCTConfig().paper_name == "CCT-7/3x1"
    assert CCTConfig(tokenizer_type="patch", patch_size=2, num_hidden_layers=3).paper_name == "CVT-3/2"
    assert CCTConfig(tokenizer_type="patch", pooling_type="cls", num_hidden_layers=2).paper_name == "ViT-Lite-2/4"
    with pytest.raises(AttributeError):
        CCTConfig().paper_name = "CCT-1/1x1"
    assert "paper_name" not in CCTConfig().to_dict()


# --- image processor ------------------------------------------------------------------------------------------------


def test_image_processor_converts_grayscale_and_normalises():
    processor = CCTImageProcessor()
    gray = Image.new("L", (48, 40), color=128)

    pixel_values = processor(gray, return_tensors="pt").pixel_values

    assert pixel_values.shape == (1, 3, 32, 32)
    expected = (128 / 255 - torch.tensor(CIFAR10_MEAN)) / torch.tensor(CIFAR10_STD)
    torch.testing.assert_close(pixel_values[0, :, 5, 7], expected, rtol=1e-4, atol=1e-4)


def test_image_processor_statistics_are_configurable(tmp_path):
    processor = CCTImageProcessor(size={"height": 24, "width": 24}, image_mean=[0.5] * 3, image_std=[0.25] * 3)
    processor.save_pretrained(tmp_path)
    reloaded = CCTImageProcessor.from_pretrained(tmp_path)

    pixel_values = reloaded(Image.new("RGB", (10, 10), color=(255, 0, 128)), return_tensors="pt").pixel_values

    assert pixel_values.shape == (1, 3, 24, 24)
    torch.testing.assert_close(pixel_values[0, :, 0, 0], torch.tensor([2.0, -2.0, (128 / 255 - 0.5) / 0.25]))


# --- remote code ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["configuration_cct.py", "modeling_cct.py", "image_processing_cct.py"])
def test_remote_code_files_import_only_torch_transformers_and_siblings(file_name):
    """`register_for_auto_class` copies these files for `trust_remote_code` users without hf_compact installed."""
    import hf_compact.cct

    tree = ast.parse((Path(hf_compact.cct.__file__).parent / file_name).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= {"collections", "math", "typing", "numpy", "torch", "transformers"}


def test_image_processor_scales_16_bit_images_by_their_range():
    processor = CCTImageProcessor(size={"height": 8, "width": 8}, image_mean=[0.0] * 3, image_std=[1.0] * 3)
    sixteen_bit = Image.new("I;16", (8, 8))
    sixteen_bit.putdata([40000] * 64)
    assert sixteen_bit.mode == "I;16"
    pixel_values = processor(sixteen_bit, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixel_values, torch.full((1, 3, 8, 8), 156 / 255))  # round(40000 / 257) = 156
    array = np.full((8, 8, 3), 65535, dtype=np.uint16)
    torch.testing.assert_close(processor(array, return_tensors="pt")["pixel_values"], torch.ones(1, 3, 8, 8))


def identity_processor(size: int = 8) -> CCTImageProcessor:
    """Resizes to `size` and rescales to [0, 1]; no normalisation. (The tests' arrays are 8x8: transformers reads a
    (4, 4, 3) array as a channels-first image with 4 channels.)"""
    return CCTImageProcessor(size={"height": size, "width": size}, image_mean=[0.0] * 3, image_std=[1.0] * 3)


def test_image_processor_scales_32_bit_and_float_pil_images_by_their_range():
    processor = identity_processor()
    thirty_two_bit = Image.new("I", (8, 8))
    thirty_two_bit.putdata([51400] * 64)  # a 16-bit PNG as PIL opens it
    pixel_values = processor(thirty_two_bit, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixel_values, torch.full((1, 3, 8, 8), 200 / 255))  # 51400 / 257 = 200
    float_image = Image.new("F", (8, 8))
    float_image.putdata([0.8] * 64)
    torch.testing.assert_close(
        processor(float_image, return_tensors="pt")["pixel_values"], torch.full((1, 3, 8, 8), 0.8)
    )
    float_image.putdata([2.5] * 64)
    with pytest.raises(
        ValueError, match=r"`images`: the values of a mode-F image must be in \[0, 1\], got \[2.5, 2.5\]"
    ):
        processor(float_image)
    thirty_two_bit.putdata([70000] * 64)
    with pytest.raises(ValueError, match=r"the values of a mode-I image must be in \[0, 65535\], got \[70000.0"):
        processor(thirty_two_bit)


def test_image_processor_refuses_empty_images_and_reads_bool_arrays_as_black_and_white():
    processor = identity_processor()
    with pytest.raises(ValueError, match=r"`images` must have at least one pixel, got an image of size \(0, 0, 3\)"):
        processor(np.zeros((0, 0, 3), dtype=np.uint8))
    mask = np.zeros((8, 8, 3), dtype=bool)
    mask[:4] = True
    pixel_values = processor(mask, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixel_values[0, :, :4], torch.ones(3, 4, 8))
    torch.testing.assert_close(pixel_values[0, :, 4:], torch.zeros(3, 4, 8))


def test_image_processor_takes_2d_arrays_as_grayscale_images():
    processor = identity_processor()
    gray = np.full((8, 8), 102, dtype=np.uint8)
    expected = torch.full((1, 3, 8, 8), 0.4)
    torch.testing.assert_close(processor(gray, return_tensors="pt")["pixel_values"], expected)
    torch.testing.assert_close(processor(torch.from_numpy(gray), return_tensors="pt")["pixel_values"], expected)
    batch = processor([gray, np.zeros((3, 6), dtype=np.uint8)], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(batch, torch.cat([expected, torch.zeros(1, 3, 8, 8)]))
    # the same image as a (height, width, 1) array
    torch.testing.assert_close(processor(gray[..., None], return_tensors="pt")["pixel_values"], expected)


def test_image_processor_warns_when_rescaling_images_already_in_0_1():
    from transformers.utils import logging

    processor = CCTImageProcessor(size={"height": 4, "width": 4})
    float_image = np.random.default_rng(0).random((4, 4, 3), dtype=np.float32)
    logger = logging.get_logger("hf_compact.cct.image_processing_cct")
    with CaptureLogger(logger) as captured:
        processor(float_image, return_tensors="pt")
    assert "trying to rescale already rescaled images" in captured.out
    with CaptureLogger(logger) as captured:
        processor((float_image * 255).astype(np.uint8), return_tensors="pt")
    assert captured.out == ""
