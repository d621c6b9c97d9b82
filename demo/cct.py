"""Demo part 1: CCT vs ViT-Lite vs an SVC on scikit-learn's digits (32x32 RGB, fixed held-out split), on CPU.

Both transformers are trained by ``training/train_cct.py`` (its command line) with the same budget and recipe
(a light one: random-resized crop of 85-100% of the digit, label smoothing, cosine schedule; no flips, since
digits are not mirror-symmetric). scikit-learn's ``SVC`` on the same pixels of the same split is the reference.
The CCT is saved at ``output_dir / "cct"`` (the DiT demo uses it as a classifier), reloaded with
``pipeline("image-classification")`` and run on a few held-out digits, saved as ``cct_predictions.png`` (each digit
with its true and predicted label).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hf_compact.data import load_digits_dataset

from .recipes import run_recipe

# CCT-2/3x2 narrowed to width 64 (MLP 128, first convolution 32 channels), trained at 16 px: the digits are 8x8
# scans, so 16 px keeps all their detail while the convolutions cost a quarter of 32 px; 2 conv layers bring the
# 16x16 digit down to a 4x4 token grid. ViT-Lite-2/4 gets the same width, depth and 4x4 grid from 4x4 patches.
# The image processor resizes whatever it is given (e.g. the DiT's 32 px samples) to 16 px.
IMAGE_SIZE = ["--image_size", "16"]
CCT_MODEL = [
    "--preset",
    "cct_2_3x2_32",
    "--config_overrides",
    "hidden_size=64,intermediate_size=128,conv_intermediate_channels=32",
    *IMAGE_SIZE,
]
VIT_LITE_MODEL = [
    "--preset",
    "vit_2_4_32",
    "--config_overrides",
    "hidden_size=64,intermediate_size=128",
    *IMAGE_SIZE,
]
NUM_SHOWN = 8
SHOWN_SIZE = 96  # pixels per digit in cct_predictions.png


def recipe(output_dir: Path, epochs: int, batch_size: int, learning_rate: float) -> list[str]:
    return [
        "--dataset_name", "digits", "--output_dir", str(output_dir), "--overwrite_output_dir",
        "--num_train_epochs", str(epochs), "--warmup_epochs", "1", "--cooldown_epochs", "0",
        "--per_device_train_batch_size", str(batch_size), "--learning_rate", str(learning_rate),
        "--warmup_lr", "1e-5", "--min_lr", "1e-5", "--weight_decay", "0.05",
        "--crop_scale", "0.85", "1.0", "--hflip_prob", "0", "--randaugment_num_ops", "0",
        "--random_erasing_prob", "0", "--mixup_prob", "0", "--label_smoothing", "0.1",
        "--image_mean", "0.5", "0.5", "0.5", "--image_std", "0.5", "0.5", "0.5", "--seed", "0",
    ]  # fmt: skip


def train(model_flags: list[str], output_dir: Path, **budget) -> tuple[dict, float]:
    started = time.perf_counter()
    results = run_recipe("train_cct.py", [*model_flags, *recipe(output_dir, **budget)])
    return results, time.perf_counter() - started


def svc_accuracy() -> float:
    """scikit-learn's SVC (RBF, default C) on the raw 32x32 RGB pixels of the same split."""
    from sklearn.svm import SVC

    digits = load_digits_dataset(image_size=32)

    def pixels_and_labels(split: str) -> tuple[np.ndarray, np.ndarray]:
        images = np.stack([np.asarray(image, dtype=np.float32).ravel() / 255.0 for image in digits[split]["image"]])
        return images, np.asarray(digits[split]["label"])

    train_pixels, train_labels = pixels_and_labels("train")
    test_pixels, test_labels = pixels_and_labels("test")
    return float(SVC().fit(train_pixels, train_labels).score(test_pixels, test_labels))


def classify_with_pipeline(model_dir: Path, output_dir: Path) -> list[dict]:
    """Reload the saved CCT with ``pipeline("image-classification")`` and classify the first held-out digits."""
    from transformers import pipeline

    test_split = load_digits_dataset(image_size=32)["test"]
    images, labels = test_split["image"][:NUM_SHOWN], test_split["label"][:NUM_SHOWN]
    classifier = pipeline("image-classification", model=str(model_dir), device="cpu")
    shown = []
    for label, prediction in zip(labels, classifier(images, top_k=1)):
        shown.append(
            {
                "true": str(label),
                "predicted": prediction[0]["label"],
                "score": round(prediction[0]["score"], 3),
            }
        )
        print(f"  held-out digit {label}: predicted {prediction[0]['label']} (score {prediction[0]['score']:.3f})")
    save_labelled_predictions(images, shown, output_dir / "cct_predictions.png")
    return shown


def save_labelled_predictions(images: list, shown: list[dict], path: Path) -> None:
    """The digits side by side, each with ``true N`` and ``predicted M`` (red when wrong) written under it."""
    caption_height = 30
    grid = Image.new("RGB", (SHOWN_SIZE * len(images), SHOWN_SIZE + caption_height), "white")
    draw = ImageDraw.Draw(grid)
    for index, (image, item) in enumerate(zip(images, shown)):
        left = SHOWN_SIZE * index
        grid.paste(image.convert("RGB").resize((SHOWN_SIZE, SHOWN_SIZE), Image.NEAREST), (left, 0))
        colour = "black" if item["true"] == item["predicted"] else "red"
        draw.text((left + 4, SHOWN_SIZE + 2), f"true {item['true']}", fill="black")
        draw.text((left + 4, SHOWN_SIZE + 15), f"predicted {item['predicted']}", fill=colour)
    grid.save(path)


def run(output_dir: Path, epochs: int = 10, batch_size: int = 64, learning_rate: float = 3e-3) -> dict:
    """Train and compare the three classifiers for a fixed number of epochs; returns the numbers for the results."""
    output_dir = Path(output_dir)
    budget = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    print(f"[cct] CCT vs ViT-Lite on the digits, {epochs} epochs each")
    cct, cct_seconds = train(CCT_MODEL, output_dir / "cct", **budget)
    vit_lite, vit_lite_seconds = train(VIT_LITE_MODEL, output_dir / "vit_lite", **budget)
    svc = svc_accuracy()
    print(
        f"[cct] held-out accuracy: CCT {cct['eval_accuracy']:.4f}, ViT-Lite {vit_lite['eval_accuracy']:.4f}, "
        f"SVC {svc:.4f}"
    )
    predictions = classify_with_pipeline(output_dir / "cct", output_dir)
    return {
        "cct_accuracy": round(cct["eval_accuracy"], 4),
        "vit_lite_accuracy": round(vit_lite["eval_accuracy"], 4),
        "svc_accuracy": round(svc, 4),
        "cct_seconds": round(cct_seconds, 1),
        "vit_lite_seconds": round(vit_lite_seconds, 1),
        "cct_epochs": epochs,
        "cct_train_steps": cct["train_steps"],
        "vit_lite_train_steps": vit_lite["train_steps"],
        "cct_pipeline_correct": sum(item["true"] == item["predicted"] for item in predictions),
        "cct_pipeline_shown": len(predictions),
    }
