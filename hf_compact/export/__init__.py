"""Export of the package's models for deployment: ONNX graphs of the CCT classifiers (vision and text), checked
against onnxruntime, with an int8 path.

    python -m hf_compact.export onnx --model outputs/cct-digits --output cct-onnx --int8

or, from Python, `hf_compact.export.export_onnx(model_or_folder, "cct-onnx", int8=True)`.
"""

from .onnx import (
    EXPORTABLE_CLASSES,
    INT8_ONNX_FILE,
    ONNX_FILE,
    OnnxExport,
    example_inputs,
    export_onnx,
    quantize_onnx_int8,
    run_onnx,
    verify_onnx,
)

__all__ = [
    "EXPORTABLE_CLASSES",
    "INT8_ONNX_FILE",
    "ONNX_FILE",
    "OnnxExport",
    "example_inputs",
    "export_onnx",
    "quantize_onnx_int8",
    "run_onnx",
    "verify_onnx",
]
