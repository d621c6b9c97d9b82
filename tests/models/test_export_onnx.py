"""ONNX export of the CCT classifiers (`hf_compact.export`): onnxruntime against PyTorch eager at several batch
sizes, the int8 graph, the processor next to the graph, the command line, and errors."""

import json
import textwrap

import numpy as np
import pytest
import tiny_models
import torch
from no_hf_compact import NO_HF_COMPACT, run_without_hf_compact
from transformers import AutoImageProcessor, AutoTokenizer

from hf_compact import CCTImageProcessor
from hf_compact.cct.tokenization_text_cct import train_word_level_tokenizer
from hf_compact.export import INT8_ONNX_FILE, ONNX_FILE, example_inputs, export_onnx, run_onnx, verify_onnx
from hf_compact.export.__main__ import main as export_main
from hf_compact.lora import apply_lora


def eager_logits(model, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(**inputs).logits.numpy()


@pytest.fixture(scope="module")
def vision_export(tmp_path_factory):
    """A tiny CCT exported with its image processor and the int8 graph."""
    model = tiny_models.tiny_cct(num_labels=4, id2label={index: f"class {index}" for index in range(4)})
    processor = CCTImageProcessor(size={"height": 16, "width": 16})
    output_dir = tmp_path_factory.mktemp("cct-onnx")
    return model, export_onnx(model, output_dir, int8=True, processor=processor)


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    """A tiny TextCCT (convolutional tokenizer, SeqPool) exported for 12 words per sequence."""
    model = tiny_models.tiny_text_cct(num_labels=3)
    return model, export_onnx(model, tmp_path_factory.mktemp("text-cct-onnx"), int8=True, sequence_length=12)


@pytest.mark.parametrize("batch_size", [1, 5, 32])
def test_vision_graph_matches_eager_at_any_batch_size(vision_export, batch_size):
    model, exported = vision_export
    assert exported.model_path == exported.output_dir / ONNX_FILE and exported.max_abs_difference <= 1e-4
    inputs = example_inputs(model, batch_size, seed=batch_size)
    np.testing.assert_allclose(run_onnx(exported.model_path, inputs), eager_logits(model, inputs), rtol=0, atol=1e-4)


def test_int8_graph_is_smaller_and_close(vision_export):
    model, exported = vision_export
    assert exported.int8_model_path == exported.output_dir / INT8_ONNX_FILE
    assert exported.int8_model_path.stat().st_size < exported.model_path.stat().st_size
    inputs = example_inputs(model, 8, seed=3)
    int8_logits = run_onnx(exported.int8_model_path, inputs)
    fp32_logits = eager_logits(model, inputs)
    assert int8_logits.shape == fp32_logits.shape
    assert not np.array_equal(int8_logits, run_onnx(exported.model_path, inputs))  # really quantized
    np.testing.assert_allclose(int8_logits, fp32_logits, rtol=0, atol=0.1)


def test_processor_and_labels_travel_with_the_graph(vision_export):
    model, exported = vision_export
    processor = AutoImageProcessor.from_pretrained(exported.output_dir)
    assert isinstance(processor, CCTImageProcessor) and processor.size == {"height": 16, "width": 16}
    config = json.loads((exported.output_dir / "config.json").read_text())
    assert config["id2label"]["3"] == "class 3"
    images = [np.full((20, 20, 3), value, dtype=np.uint8) for value in (0, 128, 255)]
    pixel_values = processor(images, return_tensors="np")["pixel_values"]
    expected = eager_logits(model, {"pixel_values": torch.from_numpy(pixel_values)})
    np.testing.assert_allclose(run_onnx(exported.model_path, {"pixel_values": pixel_values}), expected, atol=1e-4)


DEVICE_USER = NO_HF_COMPACT + textwrap.dedent(
    r"""
    import numpy as np
    import onnxruntime
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained("onnx", trust_remote_code=True)
    images = [np.full((20, 20, 3), value, dtype=np.uint8) for value in (0, 128, 255)]
    pixel_values = processor(images, return_tensors="np")["pixel_values"]
    logits = onnxruntime.InferenceSession("onnx/model.onnx").run(["logits"], {"pixel_values": pixel_values})[0]
    print(json.dumps({
        "processor_module": type(processor).__module__,
        "hf_compact_imported": any(module.startswith("hf_compact") for module in sys.modules),
        "logits": logits.tolist(),
    }))
    """
)


def test_device_user_without_hf_compact_preprocesses_and_runs_the_graph(tmp_path, vision_export):
    model, exported = vision_export
    (tmp_path / "onnx").symlink_to(exported.output_dir, target_is_directory=True)
    outputs = run_without_hf_compact(DEVICE_USER, tmp_path)
    assert outputs["processor_module"].startswith("transformers_modules.") and not outputs["hf_compact_imported"]
    images = [np.full((20, 20, 3), value, dtype=np.uint8) for value in (0, 128, 255)]
    pixel_values = CCTImageProcessor(size={"height": 16, "width": 16})(images, return_tensors="pt")["pixel_values"]
    np.testing.assert_allclose(outputs["logits"], eager_logits(model, {"pixel_values": pixel_values}), atol=1e-4)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_text_graph_matches_eager_with_padding_on_either_side(text_export, batch_size):
    model, exported = text_export
    inputs = example_inputs(model, batch_size, sequence_length=12, seed=7)
    inputs["attention_mask"][-1] = torch.tensor([0] * 5 + [1] * 7)  # left padding
    np.testing.assert_allclose(run_onnx(exported.model_path, inputs), eager_logits(model, inputs), rtol=0, atol=1e-4)
    int8_logits = run_onnx(exported.int8_model_path, inputs)
    np.testing.assert_allclose(int8_logits, eager_logits(model, inputs), rtol=0, atol=0.1)


def test_text_graph_has_a_fixed_sequence_length(text_export):
    model, exported = text_export
    inputs = example_inputs(model, 2, sequence_length=10)
    with pytest.raises(Exception, match="input_ids"):  # onnxruntime: invalid dimensions for input_ids
        run_onnx(exported.model_path, inputs)


def test_verify_catches_a_graph_that_differs(tmp_path, vision_export):
    model, exported = vision_export
    changed = tiny_models.tiny_cct(num_labels=4, seed=1)
    assert verify_onnx(exported.model_path, model) <= 1e-4
    with pytest.raises(RuntimeError, match=r"differ from PyTorch eager by up to .*atol=0.0001"):
        verify_onnx(exported.model_path, changed)


def test_merged_lora_model_exports(tmp_path):
    peft_model = apply_lora(tiny_models.tiny_cct(num_labels=3), rank=2)
    with pytest.raises(TypeError, match=r"model_or_folder: .*merge_and_unload"):
        export_onnx(peft_model, tmp_path)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    merged = peft_model.merge_and_unload()
    exported = export_onnx(merged, tmp_path)
    inputs = example_inputs(merged, 3, seed=2)
    np.testing.assert_allclose(run_onnx(exported.model_path, inputs), eager_logits(merged, inputs), atol=1e-4)


def test_command_line_exports_a_saved_folder(tmp_path, capsys):
    model = tiny_models.tiny_text_cct(num_labels=2)
    tokenizer = train_word_level_tokenizer(["a b c d e f g h"] * 4, vocab_size=50, model_max_length=16)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    export_main(["onnx", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "onnx")])
    assert "max |logit difference|" in capsys.readouterr().out
    assert (tmp_path / "onnx" / ONNX_FILE).is_file() and not (tmp_path / "onnx" / INT8_ONNX_FILE).exists()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "onnx")
    encoded = tokenizer(["a b c", "d e f g h"], padding="max_length", max_length=16, return_tensors="np")
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    expected = eager_logits(model, {name: torch.from_numpy(value) for name, value in inputs.items()})
    np.testing.assert_allclose(run_onnx(tmp_path / "onnx" / ONNX_FILE, inputs), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--model", "{tmp}/missing", "--output", "{tmp}/out"], "--model: expected a save_pretrained folder"),
        (["--model", "{tmp}/model", "--output", "{tmp}/model/config.json"], "--output: expected a folder"),
        (["--model", "{tmp}/model", "--output", "{tmp}/out", "--atol", "0"], "--atol: expected a positive"),
        (["--model", "{tmp}/model", "--output", "{tmp}/out", "--sequence_length", "0"], "--sequence_length"),
    ],
)
def test_command_line_names_the_bad_argument(tmp_path, capsys, arguments, message):
    tiny_models.tiny_cct().save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit):
        export_main(["onnx", *(argument.format(tmp=tmp_path) for argument in arguments)])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match="model_or_folder: expected a CCTForImageClassification or"):
        export_onnx(tiny_models.tiny_vitok(), tmp_path)
    with pytest.raises(ValueError, match="sequence_length: only text models"):
        export_onnx(tiny_models.tiny_cct(), tmp_path, sequence_length=8)
    with pytest.raises(ValueError, match=r"sequence_length: expected an int from \d+ .* to .*=16, got 17"):
        export_onnx(tiny_models.tiny_text_cct(), tmp_path, sequence_length=17)
    with pytest.raises(ValueError, match="atol: expected a positive number"):
        export_onnx(tiny_models.tiny_cct(), tmp_path, atol=0)
    with pytest.raises(FileNotFoundError, match="model_or_folder: expected a save_pretrained folder"):
        export_onnx(tmp_path / "nothing", tmp_path / "out")
    assert not any(tmp_path.iterdir())
