"""The ``Accelerator`` every training script starts from."""

from __future__ import annotations

import argparse
import os

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration


def build_accelerator(args: argparse.Namespace, output_dir: str | os.PathLike) -> Accelerator:
    """An ``Accelerator`` configured from the scripts' shared flags.

    Reads ``gradient_accumulation_steps``, ``mixed_precision``, ``with_tracking`` and ``report_to`` from ``args``.
    Without a GPU it runs on the CPU explicitly: only then does ``torchrun --nproc_per_node N`` give N gloo processes
    (Accelerate's ``MULTI_CPU``) instead of N independent single-process runs. The seedable sampler makes shuffling
    depend on (seed, epoch) alone, which exact resumption needs (see :mod:`.checkpointing`).
    """
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.report_to if args.with_tracking else None,
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
