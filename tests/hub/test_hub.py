"""Model cards and `push_to_hub` (hf_compact.hub), offline: the Hub client is swapped for a recording stand-in."""

from __future__ import annotations

import inspect
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tiny_models
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl
from no_hf_compact import NO_HF_COMPACT, run_without_hf_compact
from PIL import Image

import hf_compact
from hf_compact import (
    AutoencoderViTok,
    CCTConfig,
    CCTForImageClassification,
    CCTImageProcessor,
    CCTModel,
    DiTImagePipeline,
    DiTTransformer3DModel,
    DiTVideoPipeline,
    TextCCTConfig,
    TextCCTForSequenceClassification,
    TextCCTModel,
    train_word_level_tokenizer,
)
from hf_compact.hub import (
    PushToHubError,
    count_macs,
    load_for_push,
    push_to_hub,
    remote_code_registration,
    render_model_card,
    save_for_hub,
    save_pretrained_with_code,
    upload_folder_to_hub,
)
from hf_compact.vitok.presets import V2_ARCHITECTURE

LABELS = {0: "zero", 1: "one", 2: "two"}
TRAINING_CONFIG = {
    "preset": "cct_2_3x2_32",
    "learning_rate": 5e-4,
    "num_train_epochs": 300,
    "crop_scale": [0.08, 1.0],
    "dataset_name": "digits",
    "output_dir": "/home/someone/runs/cct",
    "hub_token": "hf_secret",
    "push_to_hub": True,
    "mixed_precision": None,
}
METRICS = {"eval_accuracy": 0.9167, "eval_top_5_accuracy": 0.9931, "train_loss": 0.41, "train_steps": 60}


class RecordingHub(HfApi):
    """Stands in for the Hub: checks each call against the real `HfApi` signature, records it, and keeps the
    bytes of every file that would be uploaded. `fail_at` makes one step raise like an unreachable Hub."""

    def __init__(self, fail_at: str | None = None):
        super().__init__(token=False)
        self.fail_at = fail_at
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, repo_id, **kwargs):
        inspect.signature(HfApi.create_repo).bind(self, repo_id, **kwargs)
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if self.fail_at == "create_repo":
            raise ConnectionError("Hub unreachable")
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        inspect.signature(HfApi.upload_folder).bind(self, **kwargs)
        self.calls.append(("upload_folder", kwargs))
        if self.fail_at == "upload_folder":
            raise ConnectionError("connection reset during upload")
        folder = Path(kwargs["folder_path"])
        self.uploaded = {
            path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
        }
        url = f"https://huggingface.co/{kwargs['repo_id']}/commit/{'0' * 40}"
        return CommitInfo(commit_url=url, commit_message=kwargs["commit_message"], commit_description="", oid="0" * 40)

    def card(self) -> ModelCard:
        return ModelCard(self.uploaded["README.md"].decode())


# ---------------------------------------------------------------- tiny members of each family


def tiny_cct() -> CCTForImageClassification:
    return tiny_models.tiny_cct(id2label=LABELS)


def tiny_text_cct():
    tokenizer = train_word_level_tokenizer(
        ["a good film", "a bad film", "great acting, dull plot"], vocab_size=24, model_max_length=16
    )
    torch.manual_seed(0)
    config = TextCCTConfig.from_preset(
        "text_cct_2",
        vocab_size=len(tokenizer),
        word_embedding_dim=16,
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=1,
        max_position_embeddings=16,
        id2label={0: "negative", 1: "positive"},
    )
    return TextCCTForSequenceClassification(config).eval(), tokenizer


tiny_vitok = tiny_models.tiny_vitok


def tiny_image_pipeline() -> DiTImagePipeline:
    return DiTImagePipeline(tiny_models.tiny_dit_2d(), tiny_vitok(), DDIMScheduler(), id2label=LABELS)


def tiny_video_transformer() -> DiTTransformer3DModel:
    return tiny_models.tiny_dit_3d(sample_size=2, sample_frames=2)


def tiny_video_pipeline() -> DiTVideoPipeline:
    vae = tiny_vitok(tubelet_size=2, sample_size=8)
    return DiTVideoPipeline(tiny_video_transformer(), vae, DDIMScheduler(), id2label=LABELS)


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


# ---------------------------------------------------------------- MACs and cards


def test_count_macs_matches_the_official_model():
    """Measured on the official cct_2_3x2_32 (SHI-Labs/Compact-Transformers): 0.0353 GMACs in all, 0.0332 without
    attention (the README's 0.033G), 0.0021 in the attention matmuls."""
    model = CCTForImageClassification(CCTConfig.from_preset("cct_2_3x2_32")).eval()
    macs = count_macs(lambda: model(torch.zeros(1, 3, 32, 32)))
    assert macs.total / 1e9 == pytest.approx(0.0353, abs=1e-4)
    assert macs.without_attention / 1e9 == pytest.approx(0.0332, abs=1e-4)
    assert macs.attention / 1e9 == pytest.approx(0.0021, abs=1e-4)


def test_cct_card_metadata_and_sections():
    model = tiny_cct()
    card = render_model_card(model, "someone/cct-digits", training_config=TRAINING_CONFIG, metrics=METRICS)
    card = ModelCard(str(card))  # what the Hub would parse

    data = card.data
    assert (data.library_name, data.pipeline_tag, data.license) == (
        "transformers",
        "image-classification",
        "apache-2.0",
    )
    assert data.datasets == ["digits"] and data.metrics == ["accuracy"]
    assert {"hf_compact", "cct", "custom_code"} <= set(data.tags)
    results = {(result.metric_name, result.metric_value, result.dataset_type) for result in data.eval_results}
    assert results == {("Top-1 accuracy", 0.9167, "digits"), ("Top-5 accuracy", 0.9931, "digits")}

    text = card.text
    for section in (
        "## How to use",
        "## Intended use",
        "## Architecture",
        "## Training recipe",
        "## Evaluation results",
        "## Limitations",
        "## Citation",
    ):
        assert section in text
    assert f"| model | {model.num_parameters():,} |" in text
    gmacs = count_macs(lambda: model(torch.zeros(1, 3, 16, 16))).total / 1e9
    assert f"| {gmacs:.4g} |" in text
    assert "| `learning_rate` | 0.0005 |" in text and "| `crop_scale` | 0.08, 1 |" in text
    assert "hf_secret" not in text and "/home/someone" not in text and "mixed_precision" not in text
    assert "| `train_steps` | 60 |" in text
    assert "arXiv:2104.05704" in text and "zero, one, two" in text
    assert len(python_blocks(text)) == 1 and "trust_remote_code=True" in python_blocks(text)[0]


def test_card_without_a_run_says_so_and_has_no_model_index():
    card = ModelCard(str(render_model_card(tiny_cct(), "someone/cct")))
    assert card.data.eval_results is None and card.data.datasets is None
    assert "No training run was recorded" in card.text and "No evaluation results were recorded" in card.text


def test_render_rejects_objects_of_other_libraries_and_missing_templates(tmp_path):
    with pytest.raises(TypeError, match="model_or_pipeline: expected a CCT"):
        render_model_card(torch.nn.Linear(2, 2), "someone/linear")
    with pytest.raises(FileNotFoundError, match="templates_dir"):
        render_model_card(tiny_cct(), "someone/cct", templates_dir=tmp_path / "missing")


@pytest.mark.parametrize(
    ("build", "library_name", "pipeline_tag", "citations", "names"),
    [
        (tiny_vitok, "diffusers", "image-to-image", ["arXiv:2501.09755"], ["encoder", "decoder"]),
        (
            tiny_image_pipeline,
            "diffusers",
            "unconditional-image-generation",
            ["arXiv:2501.09755", "arXiv:2212.09748"],
            ["transformer", "autoencoder"],
        ),
        (
            lambda: tiny_vitok(tubelet_size=2, sample_size=8),
            "diffusers",
            None,
            ["arXiv:2501.09755"],
            ["encoder", "decoder"],
        ),
        (tiny_video_pipeline, "diffusers", None, ["arXiv:2212.09748"], ["transformer", "autoencoder"]),
        (tiny_video_transformer, "diffusers", None, ["arXiv:2212.09748"], ["transformer"]),
    ],
    ids=["vitok", "dit-image-pipeline", "video-vitok", "dit-video-pipeline", "dit-3d-transformer"],
)
def test_diffusers_family_cards(build, library_name, pipeline_tag, citations, names):
    model = build()
    metrics = {"psnr": 21.5, "ssim": 0.71, "class_agreement": 0.8}
    card = ModelCard(str(render_model_card(model, "someone/model", metrics=metrics, dataset="digits")))
    assert (card.data.library_name, card.data.pipeline_tag) == (library_name, pipeline_tag)
    assert all(citation in card.text for citation in citations)
    components = {
        "encoder": "encoder",
        "decoder": "decoder",
        "transformer": "transformer",
        "autoencoder": "vae",
    }
    for name in names:
        component = getattr(model, components[name], model)  # a bare transformer is its own component
        assert f"| {name} | {sum(parameter.numel() for parameter in component.parameters()):,} |" in card.text
    metric_names = {result.metric_name for result in card.data.eval_results}
    assert metric_names == ({"PSNR (dB)", "SSIM"} if "encoder" in names else {"Class agreement (held-out classifier)"})


@pytest.fixture
def diffusers_modules_cache(tmp_path, monkeypatch):
    """diffusers copies remote code into `$HF_HOME/modules`; point it at the test's own folder."""
    monkeypatch.setattr("diffusers.utils.dynamic_modules_utils.HF_MODULES_CACHE", str(tmp_path / "hf_modules"))


def test_vitok_card_counts_the_latent_size_and_runs_its_snippet(tmp_path, diffusers_modules_cache):
    vae = tiny_vitok()
    save_pretrained_with_code(vae, tmp_path / "vitok")
    card = render_model_card(vae, str(tmp_path / "vitok"))
    assert "| tokens / latent size E per input | 16 / 64 |" in card.text  # (16 / 4)^2 tokens x 4 channels
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    namespace = {"images": images}
    exec(python_blocks(card.text)[0], namespace)
    assert type(namespace["vae"]).__module__ == "diffusers_modules.local.autoencoder_vitok"  # the saved file
    torch.testing.assert_close(namespace["reconstruction"], vae(images).sample, rtol=0, atol=0)


@pytest.mark.parametrize("build", [tiny_image_pipeline, tiny_video_pipeline], ids=["image", "video"])
def test_dit_card_snippet_generates_from_the_saved_pipeline(tmp_path, build, diffusers_modules_cache):
    pipeline = build()
    save_pretrained_with_code(pipeline, tmp_path)
    card = render_model_card(pipeline, str(tmp_path))
    namespace: dict = {}
    exec(python_blocks(card.text)[0].replace("num_inference_steps=50", "num_inference_steps=2"), namespace)
    if build is tiny_image_pipeline:
        assert len(namespace["images"]) == 2 and namespace["images"][0].size == (16, 16)
    else:
        assert namespace["videos"].shape == (2, 4, 8, 8, 3)


# ---------------------------------------------------------------- pushing


CCT_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    "configuration_cct.py",
    "modeling_cct.py",
    "image_processing_cct.py",
    "preprocessor_config.json",
}


PIPELINE_FILES = {
    "README.md",
    "model_index.json",
    "scheduler/scheduler_config.json",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
}


def test_push_cct_uploads_weights_code_processor_and_card():
    hub = RecordingHub()
    model = tiny_cct()
    commit = push_to_hub(
        model,
        "someone/cct-digits",
        processor=CCTImageProcessor(size={"height": 16, "width": 16}),
        training_config=TRAINING_CONFIG,
        metrics=METRICS,
        commit_message="Add CCT",
        private=True,
        api=hub,
    )
    assert commit.commit_message == "Add CCT"
    create_repo, upload = hub.calls
    assert create_repo == (
        "create_repo",
        {"repo_id": "someone/cct-digits", "private": True, "exist_ok": True},
    )
    assert upload[1]["repo_id"] == "someone/cct-digits" and upload[1]["commit_message"] == "Add CCT"
    assert set(hub.uploaded) == CCT_FILES | {"training_config.json"}
    config = json.loads(hub.uploaded["config.json"])
    assert config["auto_map"] == {
        "AutoConfig": "configuration_cct.CCTConfig",
        "AutoModelForImageClassification": "modeling_cct.CCTForImageClassification",
    }
    assert json.loads(hub.uploaded["preprocessor_config.json"])["auto_map"] == {
        "AutoImageProcessor": "image_processing_cct.CCTImageProcessor"
    }
    assert hub.uploaded["modeling_cct.py"] == Path(hf_compact.cct.modeling_cct.__file__).read_bytes()
    assert json.loads(hub.uploaded["training_config.json"])["learning_rate"] == 5e-4
    assert "hf_secret" not in hub.uploaded["README.md"].decode()
    assert {result.metric_value for result in hub.card().data.eval_results} == {0.9167, 0.9931}
    assert not Path(upload[1]["folder_path"]).exists()  # the temporary staging folder is removed after success


@pytest.mark.parametrize("modality", ["image", "text"])
def test_push_a_backbone_as_a_feature_extractor(tmp_path, monkeypatch, modality):
    hub = RecordingHub()
    if modality == "image":
        backbone, pipeline_tag = CCTModel(tiny_cct().config).eval(), "image-feature-extraction"
        inputs = {"pixel_values": torch.randn(2, 3, 16, 16)}
    else:
        backbone, pipeline_tag = TextCCTModel(tiny_text_cct()[0].config).eval(), "feature-extraction"
        inputs = {
            "input_ids": torch.tensor([[2, 3, 4], [5, 6, 1]]),
            "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
        }
    push_to_hub(backbone, "someone/backbone", local_dir=tmp_path / "staged", api=hub)
    auto_map = json.loads(hub.uploaded["config.json"])["auto_map"]
    assert auto_map["AutoModel"] == f"{type(backbone).__module__.rpartition('.')[2]}.{type(backbone).__name__}"
    card = hub.card()
    assert card.data.pipeline_tag == pipeline_tag and f"{modality} encoder" in card.text

    # The card's snippet, pointed at the staged folder (with hf_compact imported, transformers prefers the
    # registered class; the subprocess test below covers users without hf_compact).
    monkeypatch.setattr("transformers.dynamic_module_utils.HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    namespace = dict(inputs)
    exec(python_blocks(card.text)[0].replace("someone/backbone", str(tmp_path / "staged")), namespace)
    torch.testing.assert_close(namespace["features"], backbone(**inputs).pooler_output)


def test_push_leaves_the_auto_class_registration_as_it_was(tmp_path):
    push_to_hub(tiny_cct(), "someone/cct", api=RecordingHub())
    assert CCTForImageClassification._auto_class is None and CCTConfig._auto_class is None
    tiny_cct().save_pretrained(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_push_text_cct_uploads_the_code_it_imports_and_the_tokenizer():
    hub = RecordingHub()
    model, tokenizer = tiny_text_cct()
    push_to_hub(model, "someone/text-cct", processor=tokenizer, api=hub)
    assert set(hub.uploaded) == {
        "README.md",
        "config.json",
        "model.safetensors",
        "configuration_text_cct.py",
        "modeling_text_cct.py",
        "configuration_cct.py",
        "modeling_cct.py",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    assert json.loads(hub.uploaded["config.json"])["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_text_cct.TextCCTForSequenceClassification"
    )
    assert hub.card().data.pipeline_tag == "text-classification"


def test_command_line_pushes_a_saved_text_cct_folder(tmp_path, monkeypatch, capsys):
    from hf_compact.hub.__main__ import main

    model, tokenizer = tiny_text_cct()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    hub = RecordingHub()  # the command line builds its own client: route the class methods to the recorder
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kwargs: hub.create_repo(repo_id, **kwargs))
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kwargs: hub.upload_folder(**kwargs))
    main([str(tmp_path), "someone/text-cct", "--dataset", "sst2", "--private"])
    assert hub.calls[0] == ("create_repo", {"repo_id": "someone/text-cct", "private": True, "exist_ok": True})
    assert {"tokenizer.json", "modeling_text_cct.py", "modeling_cct.py"} <= set(hub.uploaded)
    assert hub.card().data.datasets == ["sst2"]
    assert "https://huggingface.co/someone/text-cct/commit/" in capsys.readouterr().out


MODEL_FILES = {"README.md", "config.json", "diffusion_pytorch_model.safetensors"}
VIDEO_PIPELINE_CODE = {"pipeline_dit_video.py", "vae/autoencoder_vitok.py", "transformer/transformer_dit_3d.py"}


@pytest.mark.parametrize(
    ("build", "expected_files", "code"),
    [
        (tiny_vitok, MODEL_FILES | {"autoencoder_vitok.py"}, "autoencoder_vitok.AutoencoderViTok"),
        (tiny_video_transformer, MODEL_FILES | {"transformer_dit_3d.py"}, "transformer_dit_3d.DiTTransformer3DModel"),
        (tiny_models.tiny_dit_2d, MODEL_FILES, None),  # diffusers' own class travels without code
        (tiny_image_pipeline, PIPELINE_FILES | {"pipeline_dit.py", "vae/autoencoder_vitok.py"}, "pipeline_dit"),
        (tiny_video_pipeline, PIPELINE_FILES | VIDEO_PIPELINE_CODE, "pipeline_dit_video"),
    ],
    ids=["vitok", "dit-3d-transformer", "dit-2d-transformer", "dit-image-pipeline", "dit-video-pipeline"],
)
def test_push_diffusers_objects_with_their_code(build, expected_files, code):
    hub = RecordingHub()
    model_or_pipeline = build()
    push_to_hub(model_or_pipeline, "someone/model", api=hub)
    assert set(hub.uploaded) == expected_files
    assert hub.card().data.library_name == "diffusers"
    if "model_index.json" in hub.uploaded:
        index = json.loads(hub.uploaded["model_index.json"])
        assert index["_class_name"] == [code, type(model_or_pipeline).__name__]
        assert index["vae"] == ["autoencoder_vitok", "AutoencoderViTok"] and index["scheduler"][0] == "diffusers"
        assert "auto_map" not in json.loads(hub.uploaded["vae/config.json"])  # the pipeline loader needs none
    else:
        auto_map = json.loads(hub.uploaded["config.json"]).get("auto_map")
        assert auto_map == ({"AutoModel": code} if code else None)


def test_push_a_training_output_folder_uses_its_results_and_config(tmp_path):
    run = tmp_path / "run"
    model = tiny_cct()
    model.save_pretrained(run)
    CCTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(run)
    (run / "all_results.json").write_text(json.dumps(METRICS))
    (run / "training_config.json").write_text(json.dumps(TRAINING_CONFIG))
    (run / "checkpoint-60").mkdir()
    (run / "checkpoint-60" / "optimizer.bin").write_bytes(b"state")
    before = sorted(path.relative_to(run).as_posix() for path in run.rglob("*"))

    hub = RecordingHub()
    push_to_hub(run, "someone/cct-run", api=hub)
    assert set(hub.uploaded) == CCT_FILES | {"all_results.json", "training_config.json"}
    card = hub.card()
    assert {result.metric_value for result in card.data.eval_results} == {0.9167, 0.9931}
    assert "| `learning_rate` | 0.0005 |" in card.text and card.data.datasets == ["digits"]
    assert sorted(path.relative_to(run).as_posix() for path in run.rglob("*")) == before  # the run is untouched


def test_push_the_output_folder_of_a_real_training_run(tmp_path, monkeypatch):
    """`training/train_cct.py` (2 updates of a tiny CCT on the digits) -> push its --output_dir."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "training"))
    import train_cct

    output_dir = tmp_path / "cct-digits"
    results = train_cct.main([
        "--preset", "cct_2_3x2_32", "--image_size", "16", "--config_overrides", "hidden_size=32,intermediate_size=32,"
        "num_hidden_layers=1,conv_intermediate_channels=8", "--dataset_name", "digits", "--max_train_samples", "64",
        "--max_eval_samples", "32", "--per_device_train_batch_size", "32", "--max_train_steps", "2",
        "--warmup_epochs", "0", "--cooldown_epochs", "0", "--output_dir", str(output_dir),
    ])  # fmt: skip
    hub = RecordingHub()
    push_to_hub(output_dir, "someone/cct-digits", dataset="digits", api=hub)
    assert CCT_FILES | {"all_results.json"} <= set(hub.uploaded)
    assert not any(name.startswith("checkpoint") for name in hub.uploaded)
    top_1 = [result for result in hub.card().data.eval_results if result.metric_name == "Top-1 accuracy"]
    assert [result.metric_value for result in top_1] == [results["eval_accuracy"]]


def test_push_a_saved_pipeline_folder(tmp_path):
    tiny_image_pipeline().save_pretrained(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"class_agreement": 0.75, "final_loss": 0.2}))
    hub = RecordingHub()
    push_to_hub(tmp_path, "someone/dit", dataset="digits", api=hub)
    assert "results.json" in hub.uploaded and "model_index.json" in hub.uploaded
    assert [result.metric_value for result in hub.card().data.eval_results] == [0.75]


@pytest.mark.parametrize("step", ["create_repo", "upload_folder"])
def test_failed_push_keeps_every_file_and_says_what_failed(tmp_path, step):
    staging = tmp_path / "staging"
    with pytest.raises(PushToHubError) as error:
        push_to_hub(
            tiny_cct(),
            "someone/cct",
            processor=CCTImageProcessor(),
            local_dir=staging,
            api=RecordingHub(step),
        )
    message = str(error.value)
    assert ("creating the repository" if step == "create_repo" else "uploading 7 files") in message
    assert "ConnectionError" in message and str(staging) in message
    assert isinstance(error.value.__cause__, ConnectionError) and error.value.folder == staging
    assert {path.name for path in staging.iterdir()} == CCT_FILES

    hub = RecordingHub()
    upload_folder_to_hub(error.value.folder, "someone/cct", api=hub)  # the retry the message suggests
    assert set(hub.uploaded) == CCT_FILES


def test_failed_push_keeps_the_temporary_folder():
    with pytest.raises(PushToHubError) as error:
        push_to_hub(tiny_vitok(), "someone/vitok", api=RecordingHub("upload_folder"))
    assert sorted(path.name for path in error.value.folder.iterdir()) == [
        "README.md",
        "autoencoder_vitok.py",
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]


def test_offline_default_client_fails_cleanly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(PushToHubError, match="creating the repository 'someone/cct': OfflineModeIsEnabled"):
        push_to_hub(tiny_cct(), "someone/cct")


def test_push_rejects_bad_arguments(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="local_dir: expected an empty or new folder"):
        push_to_hub(tiny_cct(), "someone/cct", local_dir=tmp_path, api=RecordingHub())
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(FileNotFoundError, match="model_index.json or config.json"):
        push_to_hub(tmp_path, "someone/cct", api=RecordingHub())
    with pytest.raises(TypeError, match="model_or_pipeline"):
        push_to_hub(torch.nn.Linear(2, 2), "someone/linear", api=RecordingHub())
    with pytest.raises(ValueError, match="processor: only CCT / Text CCT models"):
        push_to_hub(tiny_vitok(), "someone/vitok", processor=CCTImageProcessor(), api=RecordingHub())


def test_remote_code_registration_rejects_unregistered_models():
    class Unregistered(CCTForImageClassification):
        pass

    with pytest.raises(TypeError, match="not registered"):
        with remote_code_registration(Unregistered(tiny_cct().config)):
            pass


# ---------------------------------------------------------------- trust_remote_code without hf_compact

REMOTE_USER = NO_HF_COMPACT + textwrap.dedent(
    r"""
    import torch
    from safetensors.torch import load_file

    outputs, classifiers = {}, {}
    for name in ("cct", "text_cct"):  # the "How to use" snippet of each model card, as written
        snippet = re.search(r"```python\n(.*?)```", open(f"{name}/README.md").read(), re.S).group(1)
        namespace = {}
        exec(snippet, namespace)
        outputs[name], classifiers[name] = namespace["predictions"], namespace["classifier"]

    expected = load_file("expected.safetensors")
    image_model, text_model = classifiers["cct"].model.eval(), classifiers["text_cct"].model.eval()
    input_ids = classifiers["text_cct"].tokenizer(["a good film"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(image_model(expected["pixel_values"]).logits, expected["image_logits"])
        torch.testing.assert_close(text_model(input_ids).logits, expected["text_logits"])
    outputs["modules"] = [type(image_model).__module__, type(text_model).__module__]
    outputs["hf_compact_imported"] = any(module.startswith("hf_compact") for module in sys.modules)
    print(json.dumps(outputs))
    """
)


def test_pushed_transformers_models_load_with_trust_remote_code_without_hf_compact(tmp_path):
    from safetensors.torch import save_file

    image_model = tiny_cct()
    processor = CCTImageProcessor(size={"height": 16, "width": 16})
    save_for_hub(image_model, tmp_path / "cct", "cct", processor=processor)
    text_model, tokenizer = tiny_text_cct()
    save_for_hub(text_model, tmp_path / "text_cct", "text_cct", processor=tokenizer)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
        tmp_path / "image.png"
    )
    pixel_values = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        expected = {
            "pixel_values": pixel_values,
            "image_logits": image_model(pixel_values).logits,
            "text_logits": text_model(tokenizer(["a good film"], return_tensors="pt")["input_ids"]).logits,
        }
    save_file(expected, tmp_path / "expected.safetensors")

    outputs = run_without_hf_compact(REMOTE_USER, tmp_path)
    assert all(module.startswith("transformers_modules.") for module in outputs["modules"])
    assert not outputs["hf_compact_imported"]
    assert {prediction["label"] for prediction in outputs["cct"]} == set(LABELS.values())
    assert outputs["text_cct"][0]["label"] in {"negative", "positive"}


@pytest.mark.parametrize("build", [tiny_image_pipeline, tiny_video_pipeline], ids=["image", "video"])
def test_reloaded_pipeline_is_the_pushed_one(tmp_path, build, diffusers_modules_cache):
    """What `push_to_hub` stages for a pipeline reloads exactly: with this package's classes (the pipeline's own
    `from_pretrained` and `load_for_push`, which run none of the folder's code) and with the folder's own code
    (`trust_remote_code=True`)."""
    pipeline = build()
    save_for_hub(pipeline, tmp_path / "staged", "someone/dit")
    package_classes, remote_code = (
        type(pipeline).from_pretrained(tmp_path / "staged"),
        DiffusionPipeline.from_pretrained(tmp_path / "staged", trust_remote_code=True),
    )
    assert type(load_for_push(tmp_path / "staged")[0]) is type(pipeline)
    assert type(package_classes) is type(pipeline) and package_classes.id2label == LABELS
    assert type(package_classes.vae) is AutoencoderViTok
    assert type(remote_code).__module__.startswith("diffusers_modules.") and remote_code.id2label == LABELS
    for reloaded in (package_classes, remote_code):
        for name in ("transformer", "vae"):
            expected, actual = getattr(pipeline, name).state_dict(), getattr(reloaded, name).state_dict()
            assert expected.keys() == actual.keys() and all(
                torch.equal(expected[key], actual[key]) for key in expected
            )
    push_to_hub(tmp_path / "staged", "someone/dit-again", local_dir=tmp_path / "again", api=RecordingHub())
    assert (tmp_path / "again" / "model_index.json").read_text() == (
        tmp_path / "staged" / "model_index.json"
    ).read_text()


def test_pipeline_from_pretrained_loads_a_folder_with_code_without_running_it(tmp_path, monkeypatch):
    """With hf-compact installed, `DiTImagePipeline.from_pretrained` loads a folder saved with its code (as the
    training scripts and `push_to_hub` save) with the installed classes: same samples, the folder's code never
    imported, `torch_dtype` and replaced components honoured, Hub ids downloaded; diffusers' generic loader asks
    for `trust_remote_code=True`."""
    pipeline = tiny_image_pipeline()
    folder = save_pretrained_with_code(pipeline, tmp_path / "dit")
    for code_file in (folder / "pipeline_dit.py", folder / "vae" / "autoencoder_vitok.py"):
        code_file.write_text("raise RuntimeError('the folder code ran')\n")
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(folder)

    def samples(loaded) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return loaded([0, 2], num_inference_steps=2, generator=generator, output_type="pt").images

    reloaded = DiTImagePipeline.from_pretrained(folder)
    assert type(reloaded.vae) is AutoencoderViTok and reloaded.id2label == LABELS
    assert torch.equal(samples(reloaded), samples(pipeline))
    half = DiTImagePipeline.from_pretrained(folder, torch_dtype=torch.bfloat16)
    assert half.transformer.dtype == half.vae.dtype == torch.bfloat16
    other_vae = tiny_vitok(seed=1)
    assert DiTImagePipeline.from_pretrained(folder, vae=other_vae).vae is other_vae

    downloads = []
    monkeypatch.setattr(
        "hf_compact.dit.class_conditioning.snapshot_download",
        lambda repo_id, **kwargs: downloads.append((repo_id, kwargs)) or str(folder),
    )
    assert DiTImagePipeline.from_pretrained("someone/dit", revision="v1").id2label == LABELS
    assert downloads == [("someone/dit", {"revision": "v1"})]

    with pytest.raises(ValueError, match="expected a saved DiTVideoPipeline, got a DiTImagePipeline"):
        DiTVideoPipeline.from_pretrained(folder)
    with pytest.raises(TypeError, match=r"\['device_mapping'\] cannot be used"):
        DiTImagePipeline.from_pretrained(folder, device_mapping="auto")


DIFFUSERS_USER = NO_HF_COMPACT + textwrap.dedent(
    r"""
    import torch
    from diffusers import AutoModel, DiffusionPipeline
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(1)
    inputs, outputs, modules = load_file("inputs.safetensors"), {}, {}
    with torch.no_grad():
        for name in ("vitok", "vitok_v2"):
            vae = AutoModel.from_pretrained(name, trust_remote_code=True)
            outputs[name] = vae.decode(vae.encode(inputs["images"]).latent_dist.mode()).sample
        transformer = AutoModel.from_pretrained("transformer_3d", trust_remote_code=True)
        outputs["noise_prediction"] = transformer(
            inputs["video_latents"], timestep=torch.tensor([10]), class_labels=torch.tensor([1])
        ).sample
        for name in ("image_pipeline", "video_pipeline"):
            pipeline = DiffusionPipeline.from_pretrained(name, trust_remote_code=True)
            generator = torch.Generator().manual_seed(0)
            result = pipeline(class_labels=[0, 2], num_inference_steps=2, generator=generator, output_type="pt")
            outputs[name] = result.images if name == "image_pipeline" else result.frames
            modules[name] = [type(pipeline).__module__, type(pipeline.vae).__module__]
    save_file({name: tensor.contiguous() for name, tensor in outputs.items()}, "outputs.safetensors")
    modules["models"] = [type(vae).__module__, type(transformer).__module__]
    modules["hf_compact_imported"] = any(module.startswith("hf_compact") for module in sys.modules)
    print(json.dumps(modules))
    """
)


def test_pushed_diffusers_objects_load_with_trust_remote_code_without_hf_compact(tmp_path):
    """ViTok (v1 and v2), the video DiT and both pipelines, staged as `push_to_hub` stages them, give the same
    decodes and the same samples (fixed generator) in a process that cannot import hf_compact."""
    from safetensors.torch import load_file, save_file

    vaes = {"vitok": tiny_vitok(), "vitok_v2": tiny_vitok(**V2_ARCHITECTURE)}  # the v1 and v2 architectures
    transformer = tiny_video_transformer()
    image_pipeline, video_pipeline = tiny_image_pipeline(), tiny_video_pipeline()
    for name, saved in [
        *vaes.items(),
        ("transformer_3d", transformer),
        ("image_pipeline", image_pipeline),
        ("video_pipeline", video_pipeline),
    ]:
        save_for_hub(saved, tmp_path / name, f"someone/{name}")
    inputs = {"images": torch.rand(2, 3, 16, 16) * 2 - 1, "video_latents": torch.randn(1, 4, 2, 2, 2)}
    save_file(inputs, tmp_path / "inputs.safetensors")
    with torch.no_grad():
        expected = {
            name: vae.decode(vae.encode(inputs["images"]).latent_dist.mode()).sample for name, vae in vaes.items()
        }
        expected |= {
            "noise_prediction": transformer(
                inputs["video_latents"], timestep=torch.tensor([10]), class_labels=torch.tensor([1])
            ).sample,
        }
    for name, pipeline in [("image_pipeline", image_pipeline), ("video_pipeline", video_pipeline)]:
        result = pipeline(
            class_labels=[0, 2], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt"
        )
        expected[name] = result.images if name == "image_pipeline" else result.frames

    modules = run_without_hf_compact(DIFFUSERS_USER, tmp_path)
    assert not modules["hf_compact_imported"]
    assert modules["models"] == [
        "diffusers_modules.local.autoencoder_vitok",
        "diffusers_modules.local.transformer_dit_3d",
    ]
    assert modules["video_pipeline"] == [
        "diffusers_modules.local.pipeline_dit_video",
        "diffusers_modules.local.autoencoder_vitok",
    ]
    outputs = load_file(tmp_path / "outputs.safetensors")
    assert outputs.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(outputs[name], tensor, rtol=0, atol=0, msg=name)


def test_save_pretrained_with_code_is_what_the_scripts_call_at_their_final_save(tmp_path):
    """A training script's folder: weights, processor and code, no card; `save_pretrained` keywords pass through."""
    processor = CCTImageProcessor(size={"height": 16, "width": 16})
    save_pretrained_with_code(tiny_cct(), tmp_path / "cct", processor=processor)
    assert {path.name for path in (tmp_path / "cct").iterdir()} == CCT_FILES - {"README.md"}
    save_pretrained_with_code(tiny_vitok(), tmp_path / "vitok", variant="fp16")
    assert {path.name for path in (tmp_path / "vitok").iterdir()} == {
        "autoencoder_vitok.py",
        "config.json",
        "diffusion_pytorch_model.fp16.safetensors",
    }
    with pytest.raises(ValueError, match="processor: only CCT / Text CCT models"):
        save_pretrained_with_code(tiny_vitok(), tmp_path / "vitok", processor=processor)


def test_card_recipe_leaves_out_the_run_history():
    training_config = {**TRAINING_CONFIG, "run_history": [{"learning_rate": 0.1, "max_train_steps": 5}]}
    card = render_model_card(tiny_cct(), "someone/cct", training_config=training_config)
    assert "| `learning_rate` | 0.0005 |" in card.text and "run_history" not in card.text
