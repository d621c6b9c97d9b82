"""`torch.compile(fullgraph=True)` traces every model forward whole: no data-dependent Python branch, no host sync.

`fullgraph=True` turns any graph break into an error, so these tests fail if a forward reads tensor values on the
host (`.item()`, `.any()`, `.tolist()` in a check). The `aot_eager` backend traces forward and backward graphs
without generating code, which keeps the tests fast; the outputs must equal the eager ones.
"""

import pytest
import tiny_models
import torch

from hf_compact import (
    AutoencoderViTok,
    CCTForImageClassification,
    DiTTransformer3DModel,
    TextCCTForSequenceClassification,
)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def compiled(module: torch.nn.Module):
    return torch.compile(module, fullgraph=True, backend="aot_eager")


def tiny_cct(**overrides) -> CCTForImageClassification:
    """Two layers, a two-convolution tokenizer, 16 px, 3 classes."""
    overrides = {"num_hidden_layers": 2, "num_attention_heads": 2, "conv_intermediate_channels": 8, **overrides}
    return tiny_models.tiny_cct("cct_2_3x2_32", num_labels=3, **overrides)


def tiny_text_cct() -> TextCCTForSequenceClassification:
    """Word vectors 12 wide, kernel 2, 3 classes."""
    return tiny_models.tiny_text_cct(word_embedding_dim=12, num_hidden_layers=2, conv_kernel_size=2, num_labels=3)


def test_cct_hidden_states_compile_whole():
    """`output_hidden_states` records every layer through forward hooks; they must not break the graph."""
    model = tiny_cct()
    pixel_values = torch.randn(2, 3, 16, 16)
    expected = model(pixel_values, output_hidden_states=True)
    output = compiled(model)(pixel_values, output_hidden_states=True)
    assert len(output.hidden_states) == len(expected.hidden_states) == 3
    for state, expected_state in zip(output.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(state, expected_state)


def test_cct_training_with_dropout_compiles_whole():
    """Train mode with attention dropout and stochastic depth: the forward and backward trace as one graph each."""
    model = tiny_cct(attention_probs_dropout_prob=0.3, drop_path_rate=0.3).train()
    pixel_values, labels = torch.randn(4, 3, 16, 16), torch.tensor([1, 0, 2, 1])
    loss = compiled(model)(pixel_values, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters())


def test_text_cct_with_inputs_embeds_compiles_whole():
    model = tiny_text_cct()
    inputs_embeds = torch.randn(2, 6, 12)
    expected = model(inputs_embeds=inputs_embeds).logits
    torch.testing.assert_close(compiled(model)(inputs_embeds=inputs_embeds).logits, expected)


@pytest.mark.parametrize("with_labels", [False, True])
def test_cct_compiles_whole(with_labels):
    model = tiny_cct()
    pixel_values = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2]) if with_labels else None
    expected = model(pixel_values, labels=labels)
    output = compiled(model)(pixel_values, labels=labels)
    torch.testing.assert_close(output.logits, expected.logits)
    if with_labels:
        torch.testing.assert_close(output.loss, expected.loss)


def test_cct_training_step_compiles_whole():
    model = tiny_cct(attention_probs_dropout_prob=0.0, drop_path_rate=0.0).train()
    pixel_values, labels = torch.randn(2, 3, 16, 16), torch.tensor([1, 0])
    model(pixel_values, labels=labels).loss.backward()
    expected = [parameter.grad.clone() for parameter in model.parameters()]
    model.zero_grad()
    compiled(model)(pixel_values, labels=labels).loss.backward()
    for gradient, expected_gradient in zip((parameter.grad for parameter in model.parameters()), expected):
        torch.testing.assert_close(gradient, expected_gradient)


def test_text_cct_with_padding_mask_compiles_whole():
    model = tiny_text_cct()
    input_ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 1, 1, 1]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    labels = torch.tensor([0, 2])
    expected = model(input_ids, attention_mask=attention_mask, labels=labels)
    output = compiled(model)(input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(output.logits, expected.logits)
    torch.testing.assert_close(output.loss, expected.loss)


def test_vitok_encode_and_decode_compile_whole():
    torch.manual_seed(0)
    vae = AutoencoderViTok(
        latent_channels=4,
        patch_size=4,
        encoder_width=32,
        encoder_depth=1,
        encoder_heads=2,
        decoder_width=32,
        decoder_depth=1,
        decoder_heads=2,
        sample_size=16,
    ).eval()
    pixels = torch.rand(2, 3, 16, 16) * 2 - 1
    encode = compiled(lambda sample: vae.encode(sample).latent_dist.mean)
    decode = compiled(lambda latents: vae.decode(latents).sample)
    latents = encode(pixels)
    torch.testing.assert_close(latents, vae.encode(pixels).latent_dist.mean)
    torch.testing.assert_close(decode(latents), vae.decode(latents).sample)


def test_dit_3d_transformer_compiles_whole():
    torch.manual_seed(1)
    transformer = DiTTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        num_layers=1,
        sample_size=2,
        sample_frames=2,
        patch_size=1,
        num_embeds_ada_norm=3,
    ).eval()
    for parameter in transformer.parameters():  # leave the adaLN-Zero init, whose output is exactly zero
        torch.nn.init.normal_(parameter, std=0.05)
    latents = torch.randn(2, 4, 2, 2, 2)
    timestep, class_labels = torch.tensor([10, 500]), torch.tensor([0, 3])
    expected = transformer(latents, timestep, class_labels).sample
    torch.testing.assert_close(compiled(transformer)(latents, timestep, class_labels).sample, expected)
