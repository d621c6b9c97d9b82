"""Size, latency and digits accuracy of a CCT in PyTorch eager, as a float32 ONNX graph and as an int8 ONNX graph
(onnxruntime, CPU), in one run on the same inputs.

The model is `cct_2_3x2_32` at 16 px (CCT-2/3x2, 0.28M parameters, the paper's smallest) trained on
scikit-learn's digits with `transformers.Trainer` for `--train_steps` steps (no augmentation), or any saved CCT
classifier of the digits (`--model FOLDER`, e.g. `train_cct.py --dataset_name digits`'s output). It is exported with
`hf_compact.export.export_onnx(..., int8=True)` (which checks the float32 graph against eager within 1e-4), then:

- size: `model.safetensors` against `model.onnx` and `model_int8.onnx`, in MB;
- latency: median over `--repeats` runs (after warm-up, the three taking turns) at each `--batch_sizes`, with
  PyTorch and onnxruntime both on `--num_threads` intra-op threads;
- accuracy on the 360 held-out digits of `load_digits_dataset` (`digits_pixel_values`).

    python benchmarks/cct_onnx.py --num_threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from hf_compact import CCTConfig, CCTForImageClassification, CCTImageProcessor
from hf_compact.data import digits_pixel_values
from hf_compact.export import export_onnx

from cpu_helpers.digits_trainer import train_on_digits

PRESET = "cct_2_3x2_32"
IMAGE_SIZE = 16  # the digits are 8x8: 16 px loses nothing and leaves 4x4 tokens


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="saved CCT classifier of the ten digits (default: train one)")
    parser.add_argument("--train_steps", type=int, default=300)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.model is not None and not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model: expected a save_pretrained folder with config.json, got {args.model!r}.")
    for name in ("train_steps", "repeats", "num_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected a positive int, got {getattr(args, name)}.")
    if min(args.batch_sizes) < 1:
        parser.error(f"--batch_sizes: expected positive ints, got {args.batch_sizes}.")
    return args


def train_digits_cct(train_pixels: torch.Tensor, train_labels: torch.Tensor, args, output_dir: str):
    torch.manual_seed(args.seed)
    model = CCTForImageClassification(CCTConfig.from_preset(PRESET, image_size=IMAGE_SIZE, num_labels=10))
    return train_on_digits(model, train_pixels, train_labels, args.train_steps, 2e-3, 64, args.seed, output_dir)


def median_milliseconds(runners: dict, pixels: np.ndarray, repeats: int) -> dict[str, float]:
    """Median latency of every runner on `pixels`; the runners take turns, so that load changes hit all alike."""
    times = {name: [] for name in runners}
    for repeat in range(3 + repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(pixels)
            if repeat >= 3:  # warm-up
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    with tempfile.TemporaryDirectory() as workdir:
        if args.model is not None:
            model = CCTForImageClassification.from_pretrained(args.model).eval()
            processor = CCTImageProcessor.from_pretrained(args.model)
        else:
            model, processor = None, CCTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        image_size = model.config.image_size if model is not None else IMAGE_SIZE
        data = digits_pixel_values(processor, image_size)
        test_pixels, test_labels = data["test"]
        if model is None:
            start = time.perf_counter()
            model = train_digits_cct(*data["train"], args, workdir)
            print(f"trained {PRESET} on digits for {args.train_steps} steps ({time.perf_counter() - start:.0f} s)")
        model.save_pretrained(Path(workdir) / "eager")
        exported = export_onnx(model, Path(workdir) / "onnx", int8=True, processor=processor)
        print(f"exported; float32 graph vs eager: max |logit difference| {exported.max_abs_difference:.1e}")

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.num_threads, 1
        sessions = {
            name: onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for name, path in (("onnx fp32", exported.model_path), ("onnx int8", exported.int8_model_path))
        }
        runners = {"pytorch eager": lambda pixels: model(pixel_values=torch.from_numpy(pixels)).logits.numpy()}
        for name, session in sessions.items():
            runners[name] = lambda pixels, session=session: session.run(["logits"], {"pixel_values": pixels})[0]
        sizes = {
            "pytorch eager": (Path(workdir) / "eager" / "model.safetensors").stat().st_size,
            "onnx fp32": exported.model_path.stat().st_size,
            "onnx int8": exported.int8_model_path.stat().st_size,
        }

        results = {}
        test_numpy = test_pixels.numpy()
        with torch.no_grad():
            for name, run in runners.items():
                predictions = np.concatenate([run(batch).argmax(-1) for batch in np.array_split(test_numpy, 6)])
                results[name] = {
                    "size_mb": sizes[name] / 1e6,
                    "accuracy": float((predictions == test_labels.numpy()).mean()),
                }
            for batch_size in args.batch_sizes:
                pixels = np.ascontiguousarray(test_numpy[np.arange(batch_size) % len(test_numpy)])
                for name, milliseconds in median_milliseconds(runners, pixels, args.repeats).items():
                    results[name][f"batch_{batch_size}_ms"] = milliseconds

    latency_columns = [f"batch_{batch_size}_ms" for batch_size in args.batch_sizes]
    print(f"\n{args.num_threads} thread(s), median of {args.repeats} runs, {len(test_labels)} test digits")
    header = ["", "size (MB)", "digits accuracy (%)"] + [f"batch {size} (ms)" for size in args.batch_sizes]
    print(" | ".join(header))
    for name, row in results.items():
        cells = [name, f"{row['size_mb']:.3f}", f"{100 * row['accuracy']:.2f}"]
        print(" | ".join(cells + [f"{row[column]:.2f}" for column in latency_columns]))
    gap = 100 * (results["onnx int8"]["accuracy"] - results["onnx fp32"]["accuracy"])
    print(f"int8 - fp32 accuracy: {gap:+.2f} points")
    return results


if __name__ == "__main__":
    main()
