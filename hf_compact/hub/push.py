"""`push_to_hub` for every model and pipeline of the package: save, write the model card, upload.

Every push goes the same way, whatever the object:

1. the weights (and processor / tokenizer) are saved into a staging folder with their modelling code
   (:func:`save_pretrained_with_code`), so that users without hf-compact load them with `trust_remote_code=True`:
   transformers models with an `auto_map` (`register_for_auto_class`), diffusers models and pipelines with one
   self-contained file per class (:mod:`hf_compact.hub.remote_code`);
2. the family's model card is rendered into `README.md` (see :mod:`hf_compact.hub.model_card`);
3. the folder is uploaded in one commit through one `huggingface_hub.HfApi` client, which tests swap out.

A failed upload never loses data: the staging folder is kept, and the `PushToHubError` names the step that failed
and the folder to retry from with :func:`upload_folder_to_hub`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import diffusers
import transformers
from diffusers import DiffusionPipeline
from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoImageProcessor, AutoTokenizer, PreTrainedModel

from ..registry import resolve_class
from ..utils.run_files import LEGACY_RESULTS_FILE, RESULTS_FILE, TRAINING_CONFIG_FILE
from ..utils.secrets import redact_secrets
from .families import card_family
from .model_card import render_model_card
from .remote_code import code_file_name, write_model_code, write_pipeline_code

_AUTO_MODEL_CLASSES = ("AutoModelForImageClassification", "AutoModelForSequenceClassification", "AutoModel")
_MISSING = object()


class PushToHubError(RuntimeError):
    """An upload failed; `folder` still holds every file that was to be uploaded."""

    def __init__(self, message: str, *, repo_id: str, folder: Path, step: str):
        super().__init__(message)
        self.repo_id, self.folder, self.step = repo_id, folder, step


def _auto_model_class_name(model: PreTrainedModel) -> str:
    """The `Auto*` class that `import hf_compact` registered this model class with."""
    for name in _AUTO_MODEL_CLASSES:
        mapping = getattr(transformers, name)._model_mapping
        if type(model.config) in mapping and mapping[type(model.config)] is type(model):
            return name
    raise TypeError(f"model: {type(model).__name__} is not registered with any of {_AUTO_MODEL_CLASSES}.")


@contextmanager
def remote_code_registration(model: PreTrainedModel, processor=None) -> Iterator[None]:
    """Within the block, `save_pretrained` copies the modelling code next to the weights and writes `auto_map`.

    Registers the config, model and (custom) processor classes with their `Auto*` classes through
    `register_for_auto_class`, and restores the previous registration on exit, so that ordinary
    `save_pretrained` calls elsewhere keep writing plain folders.
    """
    registrations = [(type(model.config), "AutoConfig"), (type(model), _auto_model_class_name(model))]
    if processor is not None and type(processor).__module__.startswith("hf_compact."):
        registrations.append((type(processor), "AutoImageProcessor"))
    previous = [(cls, cls.__dict__.get("_auto_class", _MISSING)) for cls, _ in registrations]
    try:
        for cls, auto_class in registrations:
            cls.register_for_auto_class(auto_class)
        yield
    finally:
        for cls, value in previous:
            if value is _MISSING:
                del cls._auto_class
            else:
                cls._auto_class = value


def load_for_push(folder: str | os.PathLike) -> tuple[Any, Any]:
    """Loads a `save_pretrained` folder of this package: returns `(model_or_pipeline, processor_or_None)`.

    Handles pipelines (`model_index.json`), diffusers models (`config.json` with `_class_name`) and transformers
    models (`config.json` with `model_type`, plus `preprocessor_config.json` or a tokenizer when present).

    Raises:
        FileNotFoundError: `folder` holds neither `model_index.json` nor `config.json`.
        ValueError: the saved class is not one of this package's.
    """
    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        index = json.loads((folder / "model_index.json").read_text())
        if isinstance(index.get("_class_name"), list):  # saved with its code: loaded with this package's classes
            source = f"folder ({folder / 'model_index.json'}: _class_name)"
            return resolve_class(index["_class_name"][1], source).from_pretrained(folder), None
        return DiffusionPipeline.from_pretrained(folder), None
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"folder: expected a save_pretrained folder with model_index.json or config.json, got {str(folder)!r} "
            f"holding {sorted(path.name for path in folder.iterdir()) if folder.is_dir() else 'nothing'}."
        )
    config = json.loads(config_path.read_text())
    if "_class_name" in config:
        model_class = resolve_class(config["_class_name"], f"folder ({config_path}: _class_name)", diffusers)
        return model_class.from_pretrained(folder), None
    architectures = config.get("architectures") or []
    model_class = resolve_class(architectures[0] if architectures else None, f"folder ({config_path}: architectures)")
    model = model_class.from_pretrained(folder)
    processor = None
    if (folder / "preprocessor_config.json").is_file():
        processor = AutoImageProcessor.from_pretrained(folder)
    elif (folder / "tokenizer_config.json").is_file():
        processor = AutoTokenizer.from_pretrained(folder)
    return model, processor


def _check_uploadable(model_or_pipeline, processor) -> None:
    card_family(model_or_pipeline)  # TypeError for objects that are not this package's
    if processor is not None and not isinstance(model_or_pipeline, PreTrainedModel):
        raise ValueError(
            f"processor: only CCT / Text CCT models are uploaded with a processor or tokenizer, got one for a "
            f"{type(model_or_pipeline).__name__}."
        )


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def check_repo_id(repo_id: str, argument: str = "repo_id") -> None:
    """Refuses what the Hub would refuse as a repository id, before anything is saved or trained.

    Raises:
        ValueError: naming `argument`, e.g. `"--hub_model_id"`.
    """
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(
            f"{argument}: expected a Hub repository id such as 'user/name', got {repo_id!r} ({error})"
        ) from error


def save_pretrained_with_code(
    model_or_pipeline, folder: str | os.PathLike, *, processor=None, **save_kwargs: Any
) -> Path:
    """`save_pretrained` that also writes the modelling code, so that the folder loads without hf-compact.

    A CCT / Text CCT model gets its modelling files and an `auto_map` (`transformers.AutoModel*.from_pretrained(
    folder, trust_remote_code=True)`); an `AutoencoderViTok` or `DiTTransformer3DModel` gets one self-contained file
    and an `auto_map` (`diffusers.AutoModel.from_pretrained(folder, trust_remote_code=True)`); a DiT pipeline gets
    the pipeline's file and its custom components' files, named in `model_index.json`
    (`DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`, with or without hf-compact).
    With hf-compact installed, models still load without `trust_remote_code` (`AutoencoderViTok.from_pretrained`,
    `AutoModelForImageClassification.from_pretrained`).

    Args:
        model_or_pipeline: a model or pipeline of this package (or diffusers' `DiTTransformer2DModel`).
        folder: where to save.
        processor: the image processor or tokenizer of a CCT / Text CCT model, saved beside it.
        save_kwargs: passed on to `save_pretrained` (e.g. `save_function=accelerator.save`).

    Returns:
        `folder` as a `Path`.

    Raises:
        TypeError: `model_or_pipeline` is not a model or pipeline of this package.
        ValueError: a processor was given for a diffusers model or pipeline.
    """
    folder = Path(folder)
    _check_uploadable(model_or_pipeline, processor)
    if isinstance(model_or_pipeline, PreTrainedModel):
        with remote_code_registration(model_or_pipeline, processor):
            model_or_pipeline.save_pretrained(folder, **save_kwargs)
            if processor is not None:
                processor.save_pretrained(folder)
        return folder
    model_or_pipeline.save_pretrained(folder, **save_kwargs)
    if isinstance(model_or_pipeline, DiffusionPipeline):
        write_pipeline_code(model_or_pipeline, folder)
    elif code_file_name(type(model_or_pipeline)) is not None:  # not diffusers' own DiTTransformer2DModel
        write_model_code(model_or_pipeline, folder)
    return folder


def save_for_hub(
    model_or_pipeline,
    folder: str | os.PathLike,
    repo_id: str,
    *,
    processor=None,
    training_config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    dataset: str | list[str] | None = None,
    license: str = "apache-2.0",
) -> Path:
    """Writes into `folder` exactly what :func:`push_to_hub` would upload, without uploading anything.

    The folder holds the weights with their modelling code (:func:`save_pretrained_with_code`: it loads with
    `trust_remote_code=True` in an environment without hf-compact), the processor / tokenizer, the model card
    (`README.md`, written for `repo_id`) and, when given, `training_config.json` (credentials removed). Upload it
    later with :func:`upload_folder_to_hub` or `hf upload`.

    Args:
        model_or_pipeline: a CCT / Text CCT model, an `AutoencoderViTok`, a DiT transformer or a DiT pipeline.
        folder: where to write (created if needed).
        repo_id: the Hub repository the card's snippets point at, `"user/name"`.
        processor, training_config, metrics, dataset, license: as in :func:`push_to_hub`.

    Returns:
        `folder` as a `Path`.

    Raises:
        ValueError: `repo_id` is not a valid Hub repository id (checked before anything is written).
        TypeError: `model_or_pipeline` is not a model or pipeline of this package.
    """
    check_repo_id(repo_id)
    folder = Path(folder)
    _check_uploadable(model_or_pipeline, processor)
    if training_config:  # credentials (`hub_token`...) never reach the file or the card
        training_config = redact_secrets(training_config)
    save_pretrained_with_code(model_or_pipeline, folder, processor=processor)
    if training_config:
        (folder / TRAINING_CONFIG_FILE).write_text(json.dumps(dict(training_config), indent=2, default=str))
    card = render_model_card(
        model_or_pipeline,
        repo_id,
        training_config=training_config,
        metrics=metrics,
        dataset=dataset,
        license=license,
        has_processor=processor is not None,
    )
    card.save(folder / "README.md")
    return folder


def upload_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    commit_message: str = "Upload with hf-compact",
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    api: HfApi | None = None,
) -> CommitInfo:
    """Creates `repo_id` if needed and uploads every file of `folder` in one commit; `folder` is left untouched.

    Raises:
        PushToHubError: creating the repository or uploading failed (the cause is chained).
    """
    folder = Path(folder)
    api = api or HfApi(token=token)
    files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    step = f"creating the repository {repo_id!r}"
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        step = f"uploading {len(files)} files to {repo_id!r}"
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
        )
    except Exception as error:
        raise PushToHubError(
            f"push to the Hub failed while {step}: {type(error).__name__}: {error}. Nothing was deleted: the "
            f"{len(files)} files ({', '.join(files)}) are in {str(folder)!r}; retry with "
            f"hf_compact.hub.upload_folder_to_hub({str(folder)!r}, {repo_id!r}).",
            repo_id=repo_id,
            folder=folder,
            step=step,
        ) from error


def push_to_hub(
    model_or_pipeline,
    repo_id: str,
    *,
    processor=None,
    training_config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    dataset: str | list[str] | None = None,
    license: str = "apache-2.0",
    local_dir: str | os.PathLike | None = None,
    commit_message: str = "Upload with hf-compact",
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    api: HfApi | None = None,
) -> CommitInfo:
    """Uploads a model, a pipeline or a saved folder of this package to the Hub with its model card.

    Args:
        model_or_pipeline: a CCT / Text CCT model, an `AutoencoderViTok`, a DiT transformer, a DiT pipeline, or the
            `save_pretrained` folder (e.g. a training script's `--output_dir`) of any of them. For a folder, the
            processor / tokenizer saved in it, its `all_results.json` / `results.json` (as `metrics`) and its
            `training_config.json` (as `training_config`) are used unless given explicitly.
        repo_id: `"user/name"` on the Hub.
        processor: image processor or tokenizer to upload with a transformers model.
        training_config: the run's arguments (e.g. `vars(args)`) for the card's training recipe.
        metrics: the run's results for the card's evaluation section and model-index.
        dataset: the training dataset (Hub id), or a list of them; defaults to `training_config["dataset_name"]`.
        license: license of the weights.
        local_dir: an empty or new folder to stage the upload in (kept afterwards). By default a temporary folder,
            removed after a successful upload and kept after a failed one.
        commit_message, private, revision, create_pr: as in `HfApi.upload_folder` / `HfApi.create_repo`.
        token: Hub token for the default client.
        api: the Hub client to use (default: `HfApi(token=token)`).

    Returns:
        The `CommitInfo` of the upload.

    Raises:
        PushToHubError: the upload failed; the error names the step and the folder that still holds the files.
        ValueError: `repo_id` is not a valid Hub repository id, or `local_dir` exists and is not empty (both
            checked before anything is written).
        TypeError: `model_or_pipeline` is not a model or pipeline of this package.
    """
    check_repo_id(repo_id)
    extra_files: list[Path] = []
    if isinstance(model_or_pipeline, (str, os.PathLike)):
        source_folder = Path(model_or_pipeline)
        model_or_pipeline, saved_processor = load_for_push(source_folder)
        processor = processor if processor is not None else saved_processor
        # The run's results travel with its weights (older scripts wrote results.json).
        results = (RESULTS_FILE, LEGACY_RESULTS_FILE)
        extra_files = [source_folder / name for name in results if (source_folder / name).is_file()]
        if metrics is None and extra_files:
            metrics = _read_json(extra_files[0])
        if training_config is None:
            training_config = _read_json(source_folder / TRAINING_CONFIG_FILE)
    _check_uploadable(model_or_pipeline, processor)  # before anything is written

    if local_dir is not None:
        staging = Path(local_dir)
        if staging.exists() and any(staging.iterdir()):
            raise ValueError(
                f"local_dir: expected an empty or new folder to stage the upload in, got {str(staging)!r}, which "
                f"already holds {sorted(path.name for path in staging.iterdir())}."
            )
        staging.mkdir(parents=True, exist_ok=True)
    else:
        staging = Path(tempfile.mkdtemp(prefix="hf_compact-push-"))
    save_for_hub(
        model_or_pipeline,
        staging,
        repo_id,
        processor=processor,
        training_config=training_config,
        metrics=metrics,
        dataset=dataset,
        license=license,
    )
    for path in extra_files:
        shutil.copy2(path, staging / path.name)
    commit = upload_folder_to_hub(
        staging,
        repo_id,
        commit_message=commit_message,
        private=private,
        revision=revision,
        create_pr=create_pr,
        token=token,
        api=api,
    )
    if local_dir is None:
        shutil.rmtree(staging)
    return commit
