"""Export a saved CCT classifier (vision or text) to ONNX, checked against onnxruntime.

    python -m hf_compact.export onnx --model outputs/cct-digits --output cct-onnx --int8

writes `cct-onnx/model.onnx` (float32, dynamic batch axis), `model_int8.onnx` with `--int8`, `config.json` and the
model's image processor or tokenizer. The export fails if onnxruntime's logits differ from PyTorch eager by more
than `--atol`. Text models take `--sequence_length` words per sequence (default: `max_position_embeddings`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hf_compact.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    onnx = formats.add_parser("onnx", help="ONNX graph for onnxruntime (float32, optionally int8)")
    onnx.add_argument("--model", required=True, help="save_pretrained folder of a CCT / text CCT classifier")
    onnx.add_argument("--output", required=True, help="folder to write model.onnx and the processor files into")
    onnx.add_argument("--int8", action="store_true", help="also write model_int8.onnx (dynamic quantization)")
    onnx.add_argument("--sequence_length", type=int, default=None, help="words per sequence (text models)")
    onnx.add_argument("--atol", type=float, default=1e-4, help="largest accepted logit difference from PyTorch")
    args = parser.parse_args(argv)
    model = Path(args.model)
    if not (model / "config.json").is_file():
        parser.error(f"--model: expected a save_pretrained folder with config.json, got {args.model!r}.")
    if Path(args.output).is_file():
        parser.error(f"--output: expected a folder (new or existing), got the file {args.output!r}.")
    if not args.atol > 0:
        parser.error(f"--atol: expected a positive number, got {args.atol}.")
    if args.sequence_length is not None and args.sequence_length < 1:
        parser.error(f"--sequence_length: expected a positive number of words, got {args.sequence_length}.")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from .onnx import export_onnx

    result = export_onnx(args.model, args.output, int8=args.int8, sequence_length=args.sequence_length, atol=args.atol)
    print(f"Wrote {result.model_path} (max |logit difference| vs PyTorch: {result.max_abs_difference:.2e})")
    if result.int8_model_path is not None:
        print(f"Wrote {result.int8_model_path}")


if __name__ == "__main__":
    main()
