"""Evaluate a saved class-conditional generation pipeline (``DiTImagePipeline`` / ``DiTVideoPipeline``).

Generates ``--num_samples_per_class`` samples for every class and reports, for whichever networks are given:

* gFID (images) / gFVD (videos): Fréchet distance between features of the samples and of real data
  (``--dataset_name`` / ``--train_dir`` split, or precomputed ``--reference_statistics``), with a TorchScript
  feature network loaded from a file, a folder or the Hub (``--feature_extractor``: Inception-v3 for FID,
  I3D for FVD);
* gIS: Inception Score with a TorchScript network returning logits (``--inception_classifier``);
* class agreement: a saved ``transformers`` image classifier (e.g. a CCT, ``--classifier_name_or_path``) labels
  every sample (every frame of a video); the share that gets its conditioning class.

A grid of the samples (one row per class, PNG or GIF) and ``generation_metrics.json`` go to ``--output_dir``.
``main(argv)`` returns the metrics. Run with ``python training/eval_generation.py --pipeline_name_or_path DIR ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hf_compact.training_utils import parse_args_with_config
from hf_compact.utils.overrides import replace_file_sources

# The flag that chooses each source of real samples -> its flags, reset when the other one is chosen: a source given
# on the command line replaces the --config file's.
DATA_SOURCES = {
    "dataset_name": {"dataset_name": None, "dataset_config_name": None},
    "train_dir": {"train_dir": None},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--pipeline_name_or_path", required=True, help="Saved pipeline folder or Hub id.")
    parser.add_argument("--num_samples_per_class", type=int, default=50)
    parser.add_argument("--guidance_scale", type=float, default=1.5)
    parser.add_argument("--num_inference_steps", type=int, default=250)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="outputs/eval_generation")

    parser.add_argument(
        "--feature_extractor", default=None, help="TorchScript FID/FVD network: file, folder or Hub id."
    )
    parser.add_argument("--feature_extractor_filename", default=None, help="File inside a folder / Hub repo.")
    parser.add_argument(
        "--feature_extractor_revision", default=None, help="Hub commit (40 hex digits) of the network."
    )
    parser.add_argument(
        "--feature_extractor_kwargs",
        type=json.loads,
        default={"return_features": True},
        help="JSON keyword arguments of every call of the feature network.",
    )
    parser.add_argument("--feature_input_range", type=float, nargs=2, default=(0.0, 255.0))
    parser.add_argument("--reference_statistics", default=None, help="FeatureStatistics .safetensors of real data.")
    parser.add_argument("--save_reference_statistics", default=None, help="Write the real-data statistics here.")
    parser.add_argument(
        "--dataset_name", default=None, help="Hub dataset of real samples (or 'digits' / 'moving_digits')."
    )
    parser.add_argument("--dataset_config_name", default=None)
    parser.add_argument("--train_dir", default=None, help="Image folder of real samples.")
    parser.add_argument("--dataset_split", default="train")
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--max_reference_samples", type=int, default=50_000)

    parser.add_argument("--inception_classifier", default=None, help="TorchScript network returning logits (gIS).")
    parser.add_argument("--inception_classifier_filename", default=None)
    parser.add_argument("--inception_classifier_revision", default=None, help="Hub commit (40 hex digits).")
    parser.add_argument(
        "--trust_torchscript_code",
        action="store_true",
        help="Allow loading the TorchScript networks above: this RUNS THE CODE in those archives; only for files you "
        "trust (Hub sources must be pinned with --*_revision).",
    )
    parser.add_argument("--inception_classifier_kwargs", type=json.loads, default={"no_output_bias": True})
    parser.add_argument("--inception_splits", type=int, default=10)

    parser.add_argument("--classifier_name_or_path", default=None, help="transformers image classifier (agreement).")
    args = parse_args_with_config(parser, argv)
    replace_file_sources(args, sys.argv[1:] if argv is None else argv, DATA_SOURCES)
    if args.num_samples_per_class < 1:
        raise ValueError(f"--num_samples_per_class: expected at least 1, got {args.num_samples_per_class}.")
    return args


def load_reference_dataset(args: argparse.Namespace):
    """The real samples (``--dataset_split`` of ``--dataset_name``, or the images of ``--train_dir``) and the name of
    their image or video column."""
    from hf_compact.data.loading import load_image_dataset

    splits = load_image_dataset(args.dataset_name, args.dataset_config_name, args.train_dir, with_labels=False)
    dataset = splits[args.dataset_split]
    column = args.image_column or next((c for c in ("image", "img", "video") if c in dataset.column_names), None)
    if column not in dataset.column_names:
        raise ValueError(f"--image_column: expected one of the columns {dataset.column_names}, got {column!r}.")
    return dataset.select(range(min(len(dataset), args.max_reference_samples))), column


def as_feature_input(samples, video: bool):
    """Pipeline ``"pt"`` output in [0, 1] -> the extractor layout: images (B, 3, H, W), videos (B, 3, T, H, W)."""
    return samples.permute(0, 2, 1, 3, 4) if video else samples


def reference_statistics(args: argparse.Namespace, extractor):
    """Feature statistics of the real data: ``--reference_statistics``, or computed from the real samples."""
    import torch
    from tqdm.auto import tqdm

    from hf_compact.data.latent_cache import pixels_from_example
    from hf_compact.metrics import FeatureStatistics

    if args.reference_statistics is not None:
        return FeatureStatistics.load(args.reference_statistics)
    if args.dataset_name is None and args.train_dir is None:
        raise ValueError(
            "--reference_statistics / --dataset_name / --train_dir: a Fréchet distance needs real data, got none."
        )
    dataset, column = load_reference_dataset(args)
    statistics = FeatureStatistics()
    for start in tqdm(range(0, len(dataset), args.batch_size), desc="Reference features"):
        pixels = torch.stack(
            [pixels_from_example(value) for value in dataset[start : start + args.batch_size][column]]
        )
        statistics.update(extractor((pixels + 1) / 2))
    if args.save_reference_statistics:
        statistics.save(args.save_reference_statistics)
    return statistics


def load_pipeline(name_or_path: str):
    """The saved pipeline, loaded with its class's ``from_pretrained``: ``DiTVideoPipeline`` when
    ``model_index.json`` names it (as a class name, or ``[file, class]`` in a folder saved with its code),
    ``DiTImagePipeline`` otherwise (diffusers' ``DiTPipeline`` folders included)."""
    from diffusers import DiffusionPipeline

    from hf_compact.dit import DiTImagePipeline, DiTVideoPipeline

    class_name = DiffusionPipeline.load_config(name_or_path)["_class_name"]
    if isinstance(class_name, list):
        class_name = class_name[-1]
    pipeline_class = DiTVideoPipeline if class_name == DiTVideoPipeline.__name__ else DiTImagePipeline
    return pipeline_class.from_pretrained(name_or_path)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)  # every flag is checked before the imports below

    import torch
    from tqdm.auto import tqdm

    from hf_compact.dit import DiTVideoPipeline
    from hf_compact.metrics import ClassAgreement, FrechetDistance, InceptionScore, TorchScriptFeatureExtractor
    from hf_compact.utils.sample_grid import save_sample_grid

    output_dir = Path(args.output_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipeline = load_pipeline(args.pipeline_name_or_path).to(device)
    pipeline.set_progress_bar_config(disable=True)
    video = isinstance(pipeline, DiTVideoPipeline)
    num_classes = pipeline.num_classes
    id2label = pipeline.id2label or {}
    class_names = [id2label.get(index, str(index)) for index in range(num_classes)]

    metrics = []
    if args.feature_extractor is not None:
        extractor = TorchScriptFeatureExtractor.from_pretrained(
            args.feature_extractor,
            args.feature_extractor_filename,
            call_kwargs=args.feature_extractor_kwargs,
            trust_torchscript_code=args.trust_torchscript_code,
            revision=args.feature_extractor_revision,
            input_range=tuple(args.feature_input_range),
            pixel_range=(0.0, 1.0),
        ).to(device)
        name = "gfvd" if video else "gfid"
        metrics.append(FrechetDistance(extractor, reference_statistics(args, extractor), name=name))
    if args.inception_classifier is not None:
        classifier = TorchScriptFeatureExtractor.from_pretrained(
            args.inception_classifier,
            args.inception_classifier_filename,
            call_kwargs=args.inception_classifier_kwargs,
            input_range=tuple(args.feature_input_range),
            trust_torchscript_code=args.trust_torchscript_code,
            revision=args.inception_classifier_revision,
            pixel_range=(0.0, 1.0),
        ).to(device)
        metrics.append(InceptionScore(classifier, splits=args.inception_splits, name="gis"))
    agreement = None
    if args.classifier_name_or_path is not None:
        name = "video_class_agreement" if video else "class_agreement"
        agreement = ClassAgreement.from_pretrained(args.classifier_name_or_path, class_names, device, name=name)

    labels = [label for label in range(num_classes) for _ in range(args.num_samples_per_class)]
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    samples = []
    for start in tqdm(range(0, len(labels), args.batch_size), desc="Generating"):
        batch_labels = labels[start : start + args.batch_size]
        output = pipeline(
            batch_labels,
            guidance_scale=args.guidance_scale,
            num_inference_steps=args.num_inference_steps,
            generator=generator,
            output_type="pt",
        )
        batch = output.frames if video else output.images  # [0, 1]: (B, T, 3, H, W) or (B, 3, H, W)
        for metric in metrics:
            metric.add_batch(predictions=as_feature_input(batch, video))
        if agreement is not None:
            agreement.add_batch(predictions=batch, references=batch_labels)
        samples.append(batch.cpu())

    results: dict = {"num_samples": len(labels), "guidance_scale": args.guidance_scale}
    for metric in metrics:
        results.update(metric.compute())
    if agreement is not None:
        results.update(agreement.compute())
    layout = (0, 1, 3, 4, 2) if video else (0, 2, 3, 1)  # -> channels last for the grid
    grid = save_sample_grid(torch.cat(samples).permute(*layout).numpy(), num_classes, output_dir / "samples")
    results["sample_grid"] = str(grid)
    (output_dir / "generation_metrics.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
