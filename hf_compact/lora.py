"""LoRA fine-tuning of the CCT family (vision and text) with PEFT, as PEFT's ViT image-classification recipe does it.

LoRA adapters go on the attention projections of every encoder layer: `qkv` (the fused query / key / value
projection, so queries, keys and values are all adapted) and `out_proj`. The classifier, usually new for the new
labels, is trained and saved in full (`modules_to_save=["classifier"]`); everything else (tokenizer, position
embeddings, MLPs, norms, SeqPool) stays frozen. The same names serve the text models, which share the encoder.
For more capacity, adapt the MLPs too: `target_modules=["qkv", "out_proj", "fc1", "fc2"]`.

    from transformers import Trainer, TrainingArguments
    from hf_compact import CCTForImageClassification
    from hf_compact.lora import apply_lora

    model = CCTForImageClassification.from_pretrained("cct-digits", num_labels=10, ignore_mismatched_sizes=True)
    model = apply_lora(model, rank=8)          # a `peft.PeftModel`; `model.print_trainable_parameters()`
    trainer = Trainer(model, TrainingArguments("cct-lora", label_names=["labels"]), train_dataset=...)
    trainer.train()
    model.save_pretrained("cct-lora")          # adapter_config.json + adapter_model.safetensors

    model = PeftModel.from_pretrained(CCTForImageClassification.from_pretrained("cct-digits", ...), "cct-lora")
    merged = model.merge_and_unload()          # a plain CCTForImageClassification with the same logits

`label_names=["labels"]` is needed because `Trainer` cannot see `labels` in the PEFT wrapper's `forward`
signature (without it, evaluation returns no label ids). `push_lora_adapter` uploads an adapter with its card.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi, ModelCard, ModelCardData
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from .cct import CCTPreTrainedModel

CCT_LORA_TARGET_MODULES = ("qkv", "out_proj")
"""Module names LoRA adapts by default: each encoder layer's fused query/key/value projection and output projection."""

CCT_LORA_MODULES_TO_SAVE = ("classifier",)
"""Modules trained and saved in full next to the adapters: the classification head."""


def lora_config(
    rank: int = 8,
    alpha: float | None = None,
    dropout: float = 0.1,
    target_modules: Sequence[str] | None = None,
    modules_to_save: Sequence[str] | None = None,
) -> LoraConfig:
    """The `peft.LoraConfig` of the CCT recipe.

    Args:
        rank: LoRA rank `r`.
        alpha: LoRA scaling numerator (`lora_alpha`); default `rank`, so that the update is `B @ A` unscaled.
        dropout: dropout on the adapters' input.
        target_modules: module names to adapt (default `CCT_LORA_TARGET_MODULES`).
        modules_to_save: modules trained and saved in full (default `CCT_LORA_MODULES_TO_SAVE`).

    Raises:
        ValueError: `rank` is not a positive int or `dropout` is outside [0, 1).
    """
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"rank: expected a positive int, got {rank!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}.")
    return LoraConfig(
        r=rank,
        lora_alpha=rank if alpha is None else alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules or CCT_LORA_TARGET_MODULES),
        modules_to_save=list(CCT_LORA_MODULES_TO_SAVE if modules_to_save is None else modules_to_save),
        bias="none",
    )


def apply_lora(
    model: CCTPreTrainedModel,
    rank: int = 8,
    alpha: float | None = None,
    dropout: float = 0.1,
    target_modules: Sequence[str] | None = None,
    modules_to_save: Sequence[str] | None = None,
) -> PeftModel:
    """Wraps a CCT / CVT / ViT-Lite or text CCT model in LoRA adapters (see `lora_config` for the arguments):
    only the adapters and `modules_to_save` stay trainable.

    Raises:
        TypeError: `model` is not a model of the CCT family.
        ValueError: a name in `target_modules` or `modules_to_save` matches no module of `model`.
    """
    if not isinstance(model, CCTPreTrainedModel):
        raise TypeError(f"model: expected a CCT-family model (CCTPreTrainedModel), got {type(model).__name__}.")
    config = lora_config(rank, alpha, dropout, target_modules, modules_to_save)
    module_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    linear_names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    for argument, names in (("target_modules", config.target_modules), ("modules_to_save", config.modules_to_save)):
        missing = sorted(set(names) - module_names)
        if missing:
            raise ValueError(
                f"{argument}: expected names of modules of {type(model).__name__} (its linear layers: "
                f"{sorted(linear_names)}), got {missing}, which match none."
            )
    return get_peft_model(model, config)


@dataclass
class LoraArguments:
    """The LoRA flags of a `Trainer` script, for `transformers.HfArgumentParser` (`--lora_rank`, `--lora_alpha`,
    `--lora_dropout`, `--lora_target_modules`); see :meth:`apply`."""

    lora_rank: int | None = field(
        default=None,
        metadata={
            "help": "Train LoRA adapters of this rank (PEFT) instead of every weight; the classifier trains in full."
        },
    )
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA scaling numerator (default: the rank)."})
    lora_dropout: float = 0.1
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "Modules to adapt (default: qkv out_proj)."}
    )

    def apply(self, model: CCTPreTrainedModel, training_args=None) -> CCTPreTrainedModel | PeftModel:
        """`model` wrapped in LoRA adapters (:func:`apply_lora`) when `lora_rank` is set, else `model` itself; with
        adapters, `training_args.label_names` becomes `["labels"]` (the PEFT wrapper hides them from `Trainer`)."""
        if self.lora_rank is None:
            return model
        if training_args is not None:
            training_args.label_names = ["labels"]
        return apply_lora(
            model, rank=self.lora_rank, alpha=self.lora_alpha, dropout=self.lora_dropout,
            target_modules=self.lora_target_modules,
        )  # fmt: skip


def _render_adapter_card(
    model: PeftModel,
    repo_id: str,
    base_model: str | None,
    license: str,
    dataset: str | None,
    metrics: Mapping[str, Any] | None,
) -> ModelCard:
    config = model.peft_config[model.active_adapter]
    base = model.get_base_model()
    pipeline_tag = "image-classification" if base.main_input_name == "pixel_values" else "text-classification"
    adapter_parameters = base_parameters = 0
    for name, parameter in model.named_parameters():
        if "lora_" in name or ".modules_to_save." in name:
            adapter_parameters += parameter.numel()
        else:
            base_parameters += parameter.numel()
    card_data = ModelCardData(
        library_name="peft",
        base_model=base_model,
        license=license,
        datasets=[dataset] if dataset else None,
        pipeline_tag=pipeline_tag,
        tags=["lora", "hf-compact", "cct", pipeline_tag],
    )
    base_name = base_model or "BASE_MODEL"
    auto_class = {
        "image-classification": "AutoModelForImageClassification",
        "text-classification": "AutoModelForSequenceClassification",
    }[pipeline_tag]
    target_modules = ", ".join(f"`{name}`" for name in sorted(config.target_modules))
    saved_modules = ", ".join(f"`{name}`" for name in sorted(config.modules_to_save or []))
    metric_lines = "".join(
        f"| {name} | {value:.4g} |\n" for name, value in (metrics or {}).items() if _is_number(value)
    )
    results = f"\n## Results\n\n| metric | value |\n| --- | --- |\n{metric_lines}" if metric_lines else ""
    content = f"""---
{card_data.to_yaml()}
---

# LoRA adapter for {type(base).__name__}

LoRA adapter (rank {config.r}, alpha {config.lora_alpha}) on {target_modules} of every encoder layer of
[{base_name}](https://huggingface.co/{base_name}), with {saved_modules} trained and saved in full:
{adapter_parameters:,} adapter parameters for a base model of {base_parameters:,}
({100 * adapter_parameters / base_parameters:.2f}%), fine-tuned with `transformers.Trainer` and hf-compact.

## Usage

```python
import hf_compact  # registers the CCT classes with transformers' Auto classes
from peft import PeftModel
from transformers import {auto_class}

base = {auto_class}.from_pretrained("{base_name}", num_labels={base.config.num_labels}, ignore_mismatched_sizes=True)
model = PeftModel.from_pretrained(base, "{repo_id}")
merged = model.merge_and_unload()  # plain model, same logits, no PEFT needed at inference
```
{results}"""
    return ModelCard(content)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def push_lora_adapter(
    model: PeftModel,
    repo_id: str,
    *,
    base_model: str | None = None,
    processor=None,
    metrics: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    license: str = "apache-2.0",
    local_dir: str | os.PathLike | None = None,
    commit_message: str = "Upload LoRA adapter with hf-compact",
    private: bool | None = None,
    token: str | None = None,
    api: HfApi | None = None,
) -> CommitInfo:
    """Uploads a LoRA adapter of a CCT-family model (adapter weights, `adapter_config.json`, the saved classifier)
    with a model card, through `hf_compact.hub.upload_folder_to_hub`.

    Args:
        model: the `PeftModel` (e.g. from `apply_lora` after training, or `PeftModel.from_pretrained`).
        repo_id: `"user/name"` on the Hub.
        base_model: Hub id of the base model, written to `adapter_config.json` and the card (default: the one the
            adapter records).
        processor: image processor or tokenizer to upload with the adapter.
        metrics: results for the card (name -> number).
        dataset: the fine-tuning dataset (Hub id) for the card's metadata.
        license: license of the adapter weights.
        local_dir: an empty or new folder to stage the upload in (kept). By default a temporary folder, removed
            after a successful upload.
        commit_message, private, token, api: as in `hf_compact.hub.upload_folder_to_hub`.

    Raises:
        TypeError: `model` is not a `PeftModel` of a CCT-family model.
        ValueError: `local_dir` exists and is not empty.
        hf_compact.hub.PushToHubError: the upload failed (the staged files are kept).
    """
    from .hub import upload_folder_to_hub

    if not isinstance(model, PeftModel) or not isinstance(model.get_base_model(), CCTPreTrainedModel):
        raise TypeError(f"model: expected a PeftModel of a CCT-family model, got {type(model).__name__}.")
    config = model.peft_config[model.active_adapter]
    base_model = base_model or config.base_model_name_or_path
    if local_dir is not None:
        staging = Path(local_dir)
        if staging.exists() and any(staging.iterdir()):
            raise ValueError(f"local_dir: expected an empty or new folder, got {str(staging)!r}, which holds files.")
        staging.mkdir(parents=True, exist_ok=True)
    else:
        staging = Path(tempfile.mkdtemp(prefix="hf_compact-lora-"))
    recorded, config.base_model_name_or_path = config.base_model_name_or_path, base_model
    try:
        model.save_pretrained(staging, save_embedding_layers=False)  # no Hub look-up of the base model
    finally:
        config.base_model_name_or_path = recorded
    if processor is not None:
        processor.save_pretrained(staging)
    _render_adapter_card(model, repo_id, base_model, license, dataset, metrics).save(staging / "README.md")
    commit = upload_folder_to_hub(
        staging, repo_id, commit_message=commit_message, private=private, token=token, api=api
    )
    if local_dir is None:
        shutil.rmtree(staging)
    return commit


__all__ = [
    "CCT_LORA_MODULES_TO_SAVE",
    "CCT_LORA_TARGET_MODULES",
    "apply_lora",
    "lora_config",
    "push_lora_adapter",
]
