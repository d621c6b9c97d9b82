"""ONNX export of the CCT classifiers (vision and text) for small devices, checked against onnxruntime.

`export_onnx` writes `model.onnx` (float32, dynamic batch axis) into a folder together with `config.json` (labels)
and the saved image processor or tokenizer, runs it with onnxruntime on fresh inputs of another batch size and
raises if its logits differ from PyTorch eager by more than `atol`; with `int8=True` it adds `model_int8.onnx`
(onnxruntime dynamic quantization: int8 weights of the matrix multiplications, activations quantized per batch at
run time). The layout is the one of `optimum`'s ONNX folders, so the processor loads from the same folder:

    from transformers import AutoImageProcessor
    import onnxruntime

    processor = AutoImageProcessor.from_pretrained("cct-onnx", trust_remote_code=True)  # code saved with it
    session = onnxruntime.InferenceSession("cct-onnx/model_int8.onnx")
    logits = session.run(["logits"], {"pixel_values": processor(images, return_tensors="np")["pixel_values"]})[0]

The graph is traced by `torch.onnx.export`'s dynamo exporter with the plain (`"eager"`) attention math, which
exports to MatMul / Softmax on every opset. Text models are exported for a fixed number of words per sequence
(`sequence_length`, by default `config.max_position_embeddings`; pad with the tokenizer's `padding="max_length"`
and pass the `attention_mask`): the max-pooling of TextCCT's convolutional tokenizer ties the traced graph to one
length.

`onnx` and `onnxruntime` are the `export` extra: `pip install "hf-compact[export]"`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..cct import CCTForImageClassification, TextCCTForSequenceClassification
from ..hub.push import load_for_push, remote_code_registration

ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model_int8.onnx"
EXPORTABLE_CLASSES = (CCTForImageClassification, TextCCTForSequenceClassification)


@dataclass
class OnnxExport:
    """What `export_onnx` wrote: the folder, the float32 graph, its largest absolute logit difference from PyTorch
    eager on the check inputs, and the int8 graph when asked for."""

    output_dir: Path
    model_path: Path
    max_abs_difference: float
    int8_model_path: Path | None = None


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs `{module}`, which is not installed: pip install 'hf-compact[export]' "
            "(onnx, onnxruntime, onnxscript)."
        ) from error


def _text_sequence_length(model: TextCCTForSequenceClassification, sequence_length: int | None) -> int:
    config = model.config
    if sequence_length is None:
        return config.max_position_embeddings
    min_words = model.text_cct.embeddings.min_words
    max_words = config.max_position_embeddings if config.position_embedding_type != "none" else None
    if (
        not isinstance(sequence_length, int)
        or sequence_length < min_words
        or (max_words is not None and sequence_length > max_words)
    ):
        upper = f"config.max_position_embeddings={max_words}" if max_words is not None else "any length"
        raise ValueError(
            f"sequence_length: expected an int from {min_words} (the fewest words the tokenizer makes a token of) to "
            f"{upper}, got {sequence_length!r}."
        )
    return sequence_length


def example_inputs(
    model: torch.nn.Module, batch_size: int, sequence_length: int | None = None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Seeded inputs of the model's graph: `pixel_values` `(batch_size, channels, image_size, image_size)` standard
    normal, or `input_ids` / `attention_mask` `(batch_size, sequence_length)` with every sequence after the first
    shorter than the last and padded at the end."""
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    if isinstance(model, TextCCTForSequenceClassification):
        sequence_length = _text_sequence_length(model, sequence_length)
        input_ids = torch.randint(config.vocab_size, (batch_size, sequence_length), generator=generator)
        min_words = model.text_cct.embeddings.min_words
        lengths = torch.randint(min_words, sequence_length + 1, (batch_size,), generator=generator)
        lengths[0] = sequence_length
        attention_mask = (torch.arange(sequence_length)[None, :] < lengths[:, None]).long()
        return {"input_ids": input_ids, "attention_mask": attention_mask}
    shape = (batch_size, config.num_channels, config.image_size, config.image_size)
    return {"pixel_values": torch.randn(shape, generator=generator)}


def _aten_sort_stable(self, stable=None, dim: int = -1, descending: bool = False):
    """`aten.sort.stable` in ONNX (TextCCT packs real words to the front with a stable argsort of the padding mask,
    and the exporter has no translation of that overload): ONNX `TopK` breaks ties by the lower index, so a TopK over
    the whole axis is a stable sort. The keys are cast to int64, which `TopK` accepts on every runtime."""
    import onnx_ir as ir
    from onnxscript import opset18 as op

    keys = op.Cast(self, to=ir.DataType.INT64)
    axis_size = op.Reshape(op.Gather(op.Shape(keys), dim, axis=0), op.Constant(value_ints=[1]))
    values, indices = op.TopK(keys, axis_size, axis=dim, largest=descending, sorted=True)
    return op.CastLike(values, self), indices


@contextmanager
def _export_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and the plain attention math for the trace; the model's own settings come back afterwards."""
    was_training, attention = model.training, model.config._attn_implementation
    model.eval()
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(attention)
        model.train(was_training)


def _session(path: str | os.PathLike, num_threads: int | None = None):
    onnxruntime = _require("onnxruntime")
    options = onnxruntime.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path: str | os.PathLike, inputs: Mapping[str, torch.Tensor | np.ndarray]) -> np.ndarray:
    """Logits `(batch, num_labels)` of an exported graph run by onnxruntime (CPU) on `inputs` (name -> tensor)."""
    feeds = {name: np.asarray(value.numpy() if torch.is_tensor(value) else value) for name, value in inputs.items()}
    return _session(path).run(["logits"], feeds)[0]


def verify_onnx(
    path: str | os.PathLike,
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor] | None = None,
    atol: float = 1e-4,
) -> float:
    """Runs the graph at `path` with onnxruntime and `model` in eager PyTorch (eval mode, no grad) on `inputs`
    (default: `example_inputs(model, batch_size=3, seed=1)`, a batch size the export did not trace) and returns
    the largest absolute difference of their logits.

    Raises:
        RuntimeError: the difference exceeds `atol`.
    """
    if inputs is None:
        sequence_length = _onnx_sequence_length(path) if isinstance(model, TextCCTForSequenceClassification) else None
        inputs = example_inputs(model, batch_size=3, sequence_length=sequence_length, seed=1)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits.float().numpy()
    model.train(was_training)
    difference = float(np.abs(run_onnx(path, inputs) - expected).max())
    if not difference <= atol:
        raise RuntimeError(
            f"{path}: onnxruntime's logits differ from PyTorch eager by up to {difference:.3g}, more than atol={atol}."
        )
    return difference


def _onnx_sequence_length(path: str | os.PathLike) -> int:
    onnx = _require("onnx")
    graph_input = next(item for item in onnx.load(str(path), load_external_data=False).graph.input)
    return graph_input.type.tensor_type.shape.dim[1].dim_value


def quantize_onnx_int8(path: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """Writes the int8 version of the float32 graph at `path` to `output_path` with onnxruntime's dynamic
    quantization (int8 weights of MatMul / Gemm, per-batch activation scales; convolutions stay float32)."""
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(path, output_path, weight_type=QuantType.QInt8)
    return Path(output_path)


def _load_folder(folder: Path):
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"model_or_folder: expected a save_pretrained folder with config.json, got {str(folder)!r}."
        )
    return load_for_push(folder)


def export_onnx(
    model_or_folder: torch.nn.Module | str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    int8: bool = False,
    processor=None,
    sequence_length: int | None = None,
    atol: float = 1e-4,
) -> OnnxExport:
    """Exports a CCT / CVT / ViT-Lite image classifier or a text CCT classifier to `output_dir/model.onnx`.

    Args:
        model_or_folder: a `CCTForImageClassification` / `TextCCTForSequenceClassification`, or its
            `save_pretrained` folder (its image processor or tokenizer travels with it). A PEFT model must be merged
            first (`merge_and_unload()`).
        output_dir: folder to write `model.onnx`, `config.json`, the processor files and, with `int8`,
            `model_int8.onnx` into (created if needed).
        int8: also write the dynamically quantized int8 graph.
        processor: image processor or tokenizer to save with the graph (default: the folder's).
        sequence_length: words per sequence of a text graph (default `config.max_position_embeddings`).
        atol: largest absolute logit difference from PyTorch eager that the onnxruntime check accepts.

    Returns:
        `OnnxExport` with the written paths and the measured difference.

    Raises:
        TypeError: `model_or_folder` is not one of the classifiers above.
        ValueError: `sequence_length` does not fit the text model, or `atol` is not positive.
        RuntimeError: onnxruntime's logits differ from PyTorch's by more than `atol`.
    """
    if not isinstance(atol, (int, float)) or atol <= 0:
        raise ValueError(f"atol: expected a positive number, got {atol!r}.")
    if isinstance(model_or_folder, (str, os.PathLike)):
        model, saved_processor = _load_folder(Path(model_or_folder))
        processor = processor if processor is not None else saved_processor
    else:
        model = model_or_folder
    if not isinstance(model, EXPORTABLE_CLASSES):
        hint = (
            " Merge a PEFT model into its base first: `model.merge_and_unload()`."
            if hasattr(model, "peft_config")
            else ""
        )
        raise TypeError(
            f"model_or_folder: expected a {' or '.join(cls.__name__ for cls in EXPORTABLE_CLASSES)} (or its folder), "
            f"got {type(model).__name__}.{hint}"
        )
    if isinstance(model, TextCCTForSequenceClassification):
        sequence_length = _text_sequence_length(model, sequence_length)
    elif sequence_length is not None:
        raise ValueError(f"sequence_length: only text models take one, got {sequence_length!r} for an image model.")
    for module in ("onnx", "onnxscript", "onnxruntime"):
        _require(module)

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_path = output_dir / ONNX_FILE
    inputs = example_inputs(model, batch_size=2, sequence_length=sequence_length)
    batch = torch.export.Dim("batch")
    with _export_mode(model):
        torch.onnx.export(
            model,
            kwargs=inputs,
            f=model_path,
            input_names=list(inputs),
            output_names=["logits"],
            dynamic_shapes={name: {0: batch} for name in inputs},
            custom_translation_table={torch.ops.aten.sort.stable: _aten_sort_stable},
            external_data=False,
            dynamo=True,
            verbose=False,
        )
    check_inputs = example_inputs(model, batch_size=3, sequence_length=sequence_length, seed=1)
    difference = verify_onnx(model_path, model, check_inputs, atol=atol)

    # With their code and `auto_map`, so that `AutoImageProcessor.from_pretrained(output_dir, trust_remote_code=True)`
    # preprocesses without hf-compact installed.
    with remote_code_registration(model, processor):
        model.config.save_pretrained(output_dir)
        if processor is not None:
            processor.save_pretrained(output_dir)
    int8_model_path = quantize_onnx_int8(model_path, output_dir / INT8_ONNX_FILE) if int8 else None
    return OnnxExport(output_dir, model_path, difference, int8_model_path)
