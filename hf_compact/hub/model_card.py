"""Renders the model card (`README.md`) of a model or pipeline from its family's template in `model_cards/`.

The YAML metadata (`library_name`, `pipeline_tag`, `tags`, `datasets`, `metrics`, `license` and the model-index
results) is built with `huggingface_hub.ModelCardData`; the text sections come from a Jinja template that receives
the measured architecture facts, the run's own training configuration and its own metrics.

Whatever the templates interpolate goes through one of three filters, so no label, recipe value, metric name or repo
id can change the card's structure: `python_string` (a Python literal for the snippets), `cell` (a Markdown table
cell or a line of prose: HTML, pipes and newlines escaped) and `code` (an inline code span, or a cell when the value
holds a backtick or a newline).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..utils.run_files import RUN_HISTORY_KEY
from .architecture import describe_architecture
from .families import CardFamily, card_family
from .remote_code import code_file_name

TEMPLATES_DIR = Path(__file__).resolve().parent / "model_cards"
"""One template per family plus shared `partials/`; shipped inside the package (the repository's top-level
`model_cards/` is a link to it)."""

# Run arguments that say where and how a run was executed, not how the model was trained.
_RUN_ONLY_ARGUMENTS = frozenset(
    {
        "push_to_hub",
        "hub_model_id",
        "hub_strategy",
        "report_to",
        "with_tracking",
        "resume_from_checkpoint",
        "checkpointing_steps",
        "checkpoints_total_limit",
        "dataloader_num_workers",
        "config",
        "logging_steps",
        "allow_changed_flags",
        RUN_HISTORY_KEY,  # the segments of a resumed run: each one's flags, not a flag
    }
)


def _is_recipe_argument(name: str, value: Any) -> bool:
    """Keeps training hyper-parameters; drops secrets (`*token*`), local folders (`*_dir`) and run plumbing."""
    if value is None or name in _RUN_ONLY_ARGUMENTS or "token" in name or name.endswith("_dir"):
        return False
    return isinstance(value, (bool, int, float, str, list, tuple))


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(item) for item in value)
    return str(value)


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*\[\]|])")  # what could end a cell or start a span or a link


def _python_string(value: Any) -> str:
    """A Python string literal of `value` that can close neither the snippet's string nor its Markdown fence."""
    return json.dumps(str(value)).replace("`", "\\u0060")  # a JSON string is a Python string literal


def _cell(value: Any) -> str:
    """`value` as the text of one Markdown table cell or line: raw HTML and Markdown punctuation escaped,
    newlines as `<br>`."""
    return "<br>".join(_MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(str(value), quote=False)).splitlines())


def _code(value: Any) -> str:
    """`value` as an inline code span (pipes escaped, as tables need); a plain cell if a span cannot hold it."""
    text = str(value)
    if "`" in text or len(text.splitlines()) > 1:
        return _cell(text)
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`"


def _dataset_ids(dataset: Any) -> list[str]:
    if dataset is None or dataset == "":
        return []
    datasets = [dataset] if isinstance(dataset, str) else dataset
    if not isinstance(datasets, (list, tuple)) or not all(isinstance(name, str) and name for name in datasets):
        raise TypeError(f"dataset: expected a Hub dataset id or a list of them, got {dataset!r}.")
    return list(dict.fromkeys(datasets))


def training_recipe(training_config: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """`(argument, value)` rows of a run's configuration (e.g. `vars(args)` of a training script), sorted."""
    if not training_config:
        return []
    return [
        (name, _format_value(value))
        for name, value in sorted(training_config.items())
        if _is_recipe_argument(name, value)
    ]


def _numeric_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    if not metrics:
        return {}
    return {
        name: value
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def evaluation_results(
    family: CardFamily, metrics: Mapping[str, Any] | None, dataset: str | None, model_name: str
) -> list[EvalResult]:
    """Model-index entries for the evaluation metrics of `family` found in `metrics` (keys with or without the
    `eval_` prefix). Empty without a dataset: the Hub's model-index requires one."""
    if dataset is None:
        return []
    results = []
    for key, value in _numeric_metrics(metrics).items():
        metric = family.evaluation_metrics.get(key.removeprefix("eval_"))
        if metric is not None:
            results.append(
                EvalResult(
                    task_type=family.task_type,
                    dataset_type=dataset,
                    dataset_name=dataset,
                    metric_type=metric.type,
                    metric_name=metric.name,
                    metric_value=value,
                )
            )
    return results


def _template_environment(templates_dir: Path) -> jinja2.Environment:
    if not templates_dir.is_dir():
        raise FileNotFoundError(
            f"templates_dir: expected the folder of model-card templates (model_cards/ of the hf-compact "
            f"repository), got {str(templates_dir)!r}, which does not exist."
        )
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(python_string=_python_string, cell=_cell, code=_code)
    return environment


def render_model_card(
    model_or_pipeline,
    repo_id: str,
    *,
    training_config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    dataset: str | list[str] | None = None,
    license: str = "apache-2.0",
    has_processor: bool = False,
    templates_dir: str | os.PathLike | None = None,
) -> ModelCard:
    """Renders the model card of a CCT / Text CCT model, an `AutoencoderViTok`, or a DiT transformer / pipeline.

    Args:
        model_or_pipeline: the object whose weights the card describes (its parameters and MACs are measured).
        repo_id: the Hub repository (`"user/name"`) or local folder the loading snippet points at.
        training_config: the run's arguments (e.g. `vars(args)`); secrets, folders and run plumbing are dropped.
        metrics: the run's results (e.g. `all_results.json`); every number goes in the results table, the known
            evaluation metrics of the family (accuracy, PSNR, SSIM, rFID, class agreement, ...) also in the
            model-index.
        dataset: dataset of the run (a Hub id such as `"cifar10"`, or a list of them); defaults to
            `training_config["dataset_name"]`. The model-index reports the results on the first one.
        license: SPDX-style license id of the weights.
        has_processor: whether the repository ships an image processor / tokenizer (the snippet then uses
            `pipeline(...)`).
        templates_dir: folder of the templates; defaults to the templates shipped with the package.

    Returns:
        A `huggingface_hub.ModelCard` (`.data` holds the metadata, `str(card)` the whole `README.md`).

    Raises:
        TypeError: `dataset` (or `training_config["dataset_name"]`) is neither a string nor a list of strings.
    """
    family = card_family(model_or_pipeline)
    training_config = dict(training_config or {})
    datasets = _dataset_ids(dataset or training_config.get("dataset_name"))
    model_name = str(repo_id).rstrip("/").split("/")[-1]
    eval_results = evaluation_results(family, metrics, datasets[0] if datasets else None, model_name)
    card_data = ModelCardData(
        model_name=model_name if eval_results else None,  # only the model-index uses it
        library_name=family.library_name,
        pipeline_tag=family.pipeline_tag,
        license=license,
        tags=list(family.tags),
        datasets=datasets or None,
        metrics=sorted({result.metric_type for result in eval_results}) or None,
        eval_results=eval_results or None,
    )
    architecture = describe_architecture(family, model_or_pipeline, training_config)
    template = _template_environment(Path(templates_dir) if templates_dir else TEMPLATES_DIR).get_template(
        family.template
    )
    content = template.render(
        card_data=card_data.to_yaml(),
        model_name=model_name,
        repo_id=repo_id,
        model_class=type(model_or_pipeline).__name__,
        config=getattr(model_or_pipeline, "config", None),
        transformer_config=getattr(getattr(model_or_pipeline, "transformer", None), "config", None),
        is_pipeline=hasattr(model_or_pipeline, "components"),
        code_file=code_file_name(type(model_or_pipeline)) if family.library_name == "diffusers" else None,
        has_processor=has_processor,
        architecture=architecture,
        recipe=training_recipe(training_config),
        results=[(name, _format_value(value)) for name, value in _numeric_metrics(metrics).items()],
        datasets=datasets,
    )
    return ModelCard(content)
