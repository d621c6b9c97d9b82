"""The benchmarks' quiet `Trainer` run of a CCT on preprocessed digits (`hf_compact.data.digits_pixel_values`)."""

from __future__ import annotations

import torch
from torch.utils.data import StackDataset
from transformers import Trainer, TrainingArguments


def train_on_digits(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    output_dir: str,
) -> torch.nn.Module:
    """`steps` AdamW updates (weight decay 0.05, 10% warmup, cosine) on the CPU, no logging or checkpoints; returns
    `model` in eval mode. `label_names=["labels"]` lets `Trainer` see the labels through a PEFT wrapper too."""
    training_args = TrainingArguments(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=0.05,
        warmup_steps=steps // 10,
        lr_scheduler_type="cosine",
        label_names=["labels"],
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=seed,
        data_seed=seed,
    )
    train_dataset = StackDataset(pixel_values=pixel_values, labels=labels)
    Trainer(model=model, args=training_args, train_dataset=train_dataset).train()
    return model.eval()
