"""Every snippet of README.md runs, offline, on CPU.

Python blocks are preceded by `<!-- snippet: NAME [needs-hub] [needs-gpu] -->`. Each runs as written in a temporary
working directory, with the few replacements listed in `RUNS` (tiny model sizes, local files instead of Hub
downloads, fewer steps); a replacement whose text is no longer in the README fails the test, so none can go
stale. `needs-hub` blocks run with `HF_HUB_OFFLINE=1` against local folders (loads) or a recording Hub client
(uploads). Command-line blocks are checked by parsing every `training/*.py` command with the script's own parser.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tiny_models
import torch
import torch.nn.functional as F
from huggingface_hub import HfApi, RepoUrl
from launch import load_training_script
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_compact import (
    AutoencoderViTok,
    CCTForImageClassification,
    CCTImageProcessor,
    DiTImagePipeline,
    TextCCTForSequenceClassification,
)
from hf_compact.hub import save_for_hub

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SNIPPET = re.compile(r"<!-- snippet: (?P<name>[\w-]+)(?P<flags>(?: [\w-]+)*) -->\n```python\n(?P<code>.*?)```", re.S)
FLAGS = {"needs-hub", "needs-gpu"}


@dataclass
class Snippet:
    name: str
    flags: set[str]
    code: str


SNIPPETS = {
    match["name"]: Snippet(match["name"], set(match["flags"].split()), match["code"])
    for match in SNIPPET.finditer(README)
}


def tiny_cct() -> CCTForImageClassification:
    return tiny_models.tiny_cct(image_size=32, id2label={0: "cat", 1: "dog"})


def pushed_cct_folder(tmp_path: Path) -> None:
    save_for_hub(tiny_cct(), tmp_path / "pushed-cct", "pushed-cct", processor=CCTImageProcessor())


def dit_demo_folder(tmp_path: Path) -> None:
    """What ``make demo`` leaves in ``outputs/demo/dit``, written by ``train_dit.py`` itself (tiny, 4 steps)."""
    tiny_models.tiny_vitok().save_pretrained(tmp_path / "vitok")
    load_training_script("train_dit").main(
        ["--vae_name_or_path", str(tmp_path / "vitok"), "--dataset_name", "digits", "--resolution", "16",
         "--output_dir", str(tmp_path / "outputs" / "demo" / "dit"), "--latent_cache_dir", str(tmp_path / "cache"),
         "--preset", "DiT-S", "--num_layers", "1", "--num_attention_heads", "2", "--attention_head_dim", "8",
         "--per_device_train_batch_size", "8", "--max_train_steps", "4"]
    )  # fmt: skip


def plain_diffusers_folders(tmp_path: Path) -> None:
    """Folders as ``push_to_hub`` uploads them: a ViTok and a DiT pipeline, each with its code."""
    dit_demo_folder(tmp_path)
    save_for_hub(tiny_models.tiny_vitok(), tmp_path / "vitok-upload", "your-name/vitok-v2-350m-f16x16")
    pipeline = DiTImagePipeline.from_pretrained(tmp_path / "outputs" / "demo" / "dit")
    save_for_hub(pipeline, tmp_path / "dit-upload", "your-name/dit-digits")


def training_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "outputs" / "cct-cifar10"
    tiny_cct().save_pretrained(run)
    CCTImageProcessor().save_pretrained(run)
    (run / "all_results.json").write_text(json.dumps({"eval_accuracy": 0.875}))
    (run / "training_config.json").write_text(json.dumps({"preset": "cct_7_3x1_32", "dataset_name": "cifar10"}))


class RecordingUploads:
    """Class-level stand-ins for `HfApi.create_repo` / `HfApi.upload_folder` (the snippet builds its own client)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}

    def create_repo(self, repo_id, **kwargs):
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, folder_path, **kwargs):
        self.files = {path.name: path.read_bytes() for path in Path(folder_path).iterdir()}


@dataclass
class Run:
    """How a snippet runs in the test: `replacements` (old -> new text), `prepare(tmp_path)` before and
    `check(namespace, tmp_path, printed)` after it (`printed`: what the snippet wrote to stdout)."""

    replacements: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None
    check: Callable[[dict, Path, str], None] | None = None


def printed_value(printed: str):
    """The Python literal the snippet printed last (e.g. a pipeline's list of predictions)."""
    return ast.literal_eval(printed.strip().splitlines()[-1])


def check_image_classifier(classifier, predictions: list[dict] | None = None) -> torch.Tensor:
    """The pipeline's scores are the model's softmax on the processed image; returns the logits."""
    assert classifier.model.config.id2label == {0: "cat", 1: "dog"}
    image = Image.new("RGB", (64, 48), "orange")
    inputs = classifier.image_processor(image, return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, 32, 32)
    with torch.no_grad():
        logits = classifier.model(**inputs).logits[0]
    probabilities = logits.softmax(-1)
    predictions = classifier(image) if predictions is None else predictions
    assert {prediction["label"]: prediction["score"] for prediction in predictions} == pytest.approx(
        {"cat": probabilities[0].item(), "dog": probabilities[1].item()}, abs=1e-4
    )
    return logits


def check_cct_quickstart(namespace: dict, tmp_path: Path, printed: str) -> None:
    check_image_classifier(namespace["classifier"], printed_value(printed))
    assert isinstance(namespace["model"], CCTForImageClassification)
    torch.testing.assert_close(namespace["model"].state_dict(), namespace["classifier"].model.state_dict())


def check_hub_load(namespace: dict, tmp_path: Path, printed: str) -> None:
    logits = check_image_classifier(namespace["classifier"])
    # The remote-code model computes what the pushed model computes.
    inputs = CCTImageProcessor()(Image.new("RGB", (64, 48), "orange"), return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(logits, tiny_cct()(**inputs).logits[0])


def check_text_cct(namespace: dict, tmp_path: Path, printed: str) -> None:
    [prediction] = printed_value(printed)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "text-cct")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "text-cct").eval()
    assert isinstance(model, TextCCTForSequenceClassification)
    inputs = tokenizer("a gripping film", return_tensors="pt")
    assert tokenizer.unk_token_id not in inputs["input_ids"][0].tolist()  # the words are in the trained vocabulary
    with torch.no_grad():
        probabilities = model(**inputs).logits.softmax(-1)[0]
    assert prediction["label"] == model.config.id2label[int(probabilities.argmax())]
    assert prediction["score"] == pytest.approx(probabilities.max().item(), abs=1e-4)


def check_trainer(namespace: dict, tmp_path: Path, printed: str) -> None:
    """The reported accuracy and loss are those of the trained model on the evaluation set."""
    trainer, metrics = namespace["trainer"], namespace["metrics"]
    assert trainer.state.global_step == 2
    evaluation = trainer.eval_dataset[:]  # all rows, as stacked tensors
    with torch.no_grad():
        logits = trainer.model.eval()(pixel_values=evaluation["pixel_values"]).logits
    labels = evaluation["label"]
    assert logits.shape == (32, 10)
    assert metrics["eval_accuracy"] == pytest.approx((logits.argmax(-1) == labels).double().mean().item())
    assert metrics["eval_loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-4)


def check_vitok_shapes(namespace: dict, tmp_path: Path, printed: str) -> None:  # what the snippet's comments promise
    latents, reconstruction = namespace["latents"], namespace["reconstruction"]
    assert latents.shape == (2, 16, 16, 16) and reconstruction.shape == (2, 3, 256, 256)
    assert printed.strip() == f"{latents.shape} {reconstruction.shape}"
    with torch.no_grad():
        torch.testing.assert_close(
            namespace["vae"].decode(latents).sample, reconstruction
        )  # decoding is deterministic
    assert torch.isfinite(reconstruction).all() and reconstruction.std() > 0


def check_vitok_v2(namespace: dict, tmp_path: Path, printed: str) -> None:
    reloaded = AutoencoderViTok.from_pretrained(tmp_path / "vitok-v2-350m-f16x16")
    assert reloaded.config.block_type == "parallel" and reloaded.config.latent_type == "deterministic"
    torch.testing.assert_close(reloaded.state_dict(), namespace["vae"].state_dict())


def check_dit(namespace: dict, tmp_path: Path, printed: str) -> None:
    images, stock_images = namespace["images"], namespace["stock_images"]
    assert type(namespace["pipeline"]) is DiTImagePipeline
    assert len(images) == 4 and all(image.size == (16, 16) for image in images)
    assert Image.open(tmp_path / "sample.png").tobytes() == images[0].tobytes()
    assert len({image.tobytes() for image in images}) == 4  # one sample per class, not a constant image
    assert len(stock_images) == 2 and stock_images[0].size == images[0].size


def check_plain_diffusers(namespace: dict, tmp_path: Path, printed: str) -> None:
    """The folders' own code was loaded (not hf_compact's classes), and it decodes as hf_compact does."""
    vae, pipeline = namespace["vae"], namespace["pipeline"]
    assert type(vae) is not AutoencoderViTok and type(vae).__name__ == "AutoencoderViTok"
    assert type(pipeline) is not DiTImagePipeline and type(pipeline).__name__ == "DiTImagePipeline"
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(vae.decode(latents).sample, tiny_models.tiny_vitok().decode(latents).sample)


def check_conversion(namespace: dict, tmp_path: Path, printed: str) -> None:
    saved = sorted(path.name for path in (tmp_path / "cct_7_3x1_32-cifar10").iterdir())
    assert saved == ["config.json", "model.safetensors", "preprocessor_config.json"]
    # The official cct_2_3x2_32: 283,723 parameters (Hassani et al. 2021 list CCT-2/3x2 with 0.28M).
    assert namespace["model"].num_parameters() == 283_723
    reference = load_file(ROOT / "tests/data/cct/cct_2_3x2_32.io.safetensors")  # the official code's logits
    with torch.no_grad():
        logits = namespace["model"].eval()(reference["pixel_values"]).logits
    torch.testing.assert_close(logits, reference["logits"], rtol=1e-5, atol=1e-5)


RUNS: dict[str, Run] = {
    "cct-quickstart": Run({'"cct_7_3x1_32"': '"cct_2_3x2_32"'}, check=check_cct_quickstart),
    "text-cct-quickstart": Run(check=check_text_cct),
    "hub-load": Run(
        {'"your-name/cct_7_3x1_32-cifar10"': '"pushed-cct"'}, prepare=pushed_cct_folder, check=check_hub_load
    ),
    "trainer-finetune": Run(
        {
            "max_steps=300": "max_steps=2",
            "per_device_train_batch_size=64": "per_device_train_batch_size=16",
            'eval_dataset=dataset["test"]': 'eval_dataset=dataset["test"].select(range(32))',
        },
        check=check_trainer,
    ),
    "vitok-autoencode": Run(
        {
            'from_preset("S-B/16")': 'from_preset("S-B/16", encoder_width=32, encoder_depth=1, encoder_heads=2, '
            "decoder_width=32, decoder_depth=1, decoder_heads=2)"
        },
        check=check_vitok_shapes,
    ),
    "vitok-v2": Run(
        # The published 350M weights are 1.4 GB; the official-format test files hold a tiny v2 model.
        {
            'load_vitok_v2("philippehansen/ViTok-v2-350M-f16x16")': (
                f'load_vitok_v2({str(ROOT / "tests/data/vitok_v2")!r}, variant="Bd2w128h2-Bd3w128h2/1x8x4")'
            )
        },
        check=check_vitok_v2,
    ),
    "dit-generate": Run({"num_inference_steps=16": "num_inference_steps=2"}, prepare=dit_demo_folder, check=check_dit),
    "plain-diffusers": Run(
        {'"your-name/vitok-v2-350m-f16x16"': '"vitok-upload"', '"your-name/dit-digits"': '"dit-upload"'},
        prepare=plain_diffusers_folders,
        check=check_plain_diffusers,
    ),
    "convert-cct": Run(
        {
            '"cct_7_3x1_32_cifar10_300epochs.pth"': repr(
                str(ROOT / "tests/data/cct/cct_2_3x2_32.official.safetensors")
            ),
            'preset="cct_7_3x1_32"': 'preset="cct_2_3x2_32"',
        },
        check=check_conversion,
    ),
    "push-to-hub": Run(prepare=training_run_folder),
}


def test_every_python_block_is_a_named_snippet_with_a_run():
    assert README.count("```python") == len(SNIPPET.findall(README))
    assert set(SNIPPETS) == set(RUNS)
    assert all(snippet.flags <= FLAGS for snippet in SNIPPETS.values())


@pytest.mark.parametrize("name", list(RUNS))
def test_readme_snippet_runs(name, tmp_path, monkeypatch, capsys):
    snippet, run = SNIPPETS[name], RUNS[name]
    code = snippet.code
    for old, new in run.replacements.items():
        assert old in code, f"README snippet {name!r} no longer contains {old!r}; update RUNS"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    # trust_remote_code copies the model code into a modules cache: keep it inside the test folder.
    monkeypatch.setattr("transformers.dynamic_module_utils.HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    monkeypatch.setattr("diffusers.utils.dynamic_modules_utils.HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    uploads = RecordingUploads()
    monkeypatch.setattr(HfApi, "create_repo", uploads.create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", uploads.upload_folder)
    if run.prepare is not None:
        run.prepare(tmp_path)

    namespace: dict = {"__name__": f"readme_{name.replace('-', '_')}"}
    exec(compile(code, f"README.md[{name}]", "exec"), namespace)

    if run.check is not None:
        run.check(namespace, tmp_path, capsys.readouterr().out)
    if "needs-hub" in snippet.flags and "push_to_hub" in code:
        assert {
            "README.md",
            "config.json",
            "model.safetensors",
            "modeling_cct.py",
            "all_results.json",
        } <= set(uploads.files)
        assert "value: 0.875" in uploads.files["README.md"].decode()


# ---------------------------------------------------------------- command lines

COMMAND = re.compile(r"^(?:accelerate launch|torchrun|python)\b.*$", re.M)


def readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    return [shlex.split(line) for block in blocks for line in COMMAND.findall(block)]


def split_command(words: list[str]) -> tuple[str, list[str]]:
    """`accelerate launch [opts] script.py args` / `torchrun [opts] script.py args` / `python script.py args`
    -> (script or `-m module`, args)."""
    if "-m" in words:
        index = words.index("-m")
        return f"-m {words[index + 1]}", words[index + 2 :]
    index = next(i for i, word in enumerate(words) if word.endswith(".py"))
    return words[index], words[index + 1 :]


def test_readme_command_lines_parse(monkeypatch):
    commands = readme_commands()
    assert len(commands) >= 6
    monkeypatch.syspath_prepend(str(ROOT / "training"))
    monkeypatch.chdir(ROOT)
    for words in commands:
        script, arguments = split_command(words)
        if script.startswith("-m "):
            module = importlib.import_module(script[3:])  # runs a conversion: only check that it exists
            assert callable(module.main), script
            continue
        assert (ROOT / script).is_file(), script
        if "--config" in arguments:
            assert (ROOT / arguments[arguments.index("--config") + 1]).is_file()
        importlib.import_module(Path(script).stem).parse_args(arguments)  # argparse exits on a bad flag


def test_makefile_has_the_readme_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", README, re.M):
        assert re.search(rf"^{target}:", makefile, re.M), target
