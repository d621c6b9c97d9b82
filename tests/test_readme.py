"""Every snippet of README.md runs, offline, on CPU.

Python blocks are preceded by `<!-- snippet: NAME [needs-hub] [needs-gpu] -->`. Each runs as written in a temporary
working directory, with the few replacements listed in `RUNS` (tiny model sizes, local files instead of Hub
downloads, fewer steps); a replacement whose text is no longer in the README fails the test, so none can go
stale. `needs-hub` blocks run with `HF_HUB_OFFLINE=1` against local folders (loads) or a recording Hub client
(uploads). Command-line blocks are checked by parsing every `training/*.py` command with the script's own parser.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DiTTransformer2DModel
from huggingface_hub import HfApi, RepoUrl

from hf_compact import (
    AutoencoderViTok,
    CCTConfig,
    CCTForImageClassification,
    CCTImageProcessor,
    DiTImagePipeline,
)
from hf_compact.hub import save_for_hub

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SNIPPET = re.compile(r"<!-- snippet: (?P<name>[\w-]+)(?P<flags>(?: [\w-]+)*) -->\n```python\n(?P<code>.*?)```", re.S)
FLAGS = {"needs-hub", "needs-gpu"}


@dataclass
class Snippet:
    name: str
    flags: set[str]
    code: str


SNIPPETS = {match["name"]: Snippet(match["name"], set(match["flags"].split()), match["code"]) for match in SNIPPET.finditer(README)}


def tiny_cct(image_size: int = 32) -> CCTForImageClassification:
    torch.manual_seed(0)
    config = CCTConfig.from_preset(
        "cct_2_3x2_32", hidden_size=32, intermediate_size=32, num_hidden_layers=1, image_size=image_size,
        id2label={0: "cat", 1: "dog"},
    )
    return CCTForImageClassification(config).eval()


def pushed_cct_folder(tmp_path: Path) -> None:
    save_for_hub(tiny_cct(), tmp_path / "pushed-cct", "pushed-cct", processor=CCTImageProcessor())


def dit_demo_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vae = AutoencoderViTok(
        latent_channels=4, patch_size=4, encoder_width=16, encoder_depth=1, encoder_heads=2, decoder_width=16,
        decoder_depth=1, decoder_heads=2, sample_size=16,
    )
    transformer = DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=1, sample_size=4,
        patch_size=1, norm_num_groups=1, num_embeds_ada_norm=4,
    )
    DiTImagePipeline(transformer, vae, DDIMScheduler(), id2label={0: "0", 1: "1", 2: "2", 3: "3"}).save_pretrained(
        tmp_path / "outputs" / "demo" / "dit"
    )


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
    `check(namespace, tmp_path)` after it."""

    replacements: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None
    check: Callable[[dict, Path], None] | None = None


def check_pipeline_output(namespace: dict, tmp_path: Path) -> None:
    assert namespace["classifier"].model.config.id2label == {0: "cat", 1: "dog"}


def check_trainer(namespace: dict, tmp_path: Path) -> None:
    assert 0.0 <= namespace["metrics"]["eval_accuracy"] <= 1.0 and namespace["trainer"].state.global_step == 2


def check_vitok_shapes(namespace: dict, tmp_path: Path) -> None:  # what the snippet's comments promise
    assert namespace["latents"].shape == (2, 16, 16, 16) and namespace["reconstruction"].shape == (2, 3, 256, 256)


def check_vitok_v2(namespace: dict, tmp_path: Path) -> None:
    reloaded = AutoencoderViTok.from_pretrained(tmp_path / "vitok-v2-350m-f16x16")
    assert reloaded.config.block_type == "parallel" and reloaded.config.latent_type == "deterministic"


def check_dit(namespace: dict, tmp_path: Path) -> None:
    assert len(namespace["images"]) == 4 and (tmp_path / "sample.png").is_file()
    assert len(namespace["stock_images"]) == 2 and namespace["stock_images"][0].size == namespace["images"][0].size


def check_conversion(namespace: dict, tmp_path: Path) -> None:
    saved = sorted(path.name for path in (tmp_path / "cct_7_3x1_32-cifar10").iterdir())
    assert saved == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert namespace["model"].num_parameters() == 283_723  # the official cct_2_3x2_32 (docs/cct.md §0)


RUNS: dict[str, Run] = {
    "cct-quickstart": Run({'"cct_7_3x1_32"': '"cct_2_3x2_32"'}, check=check_pipeline_output),
    "text-cct-quickstart": Run(),
    "hub-load": Run(
        {'"your-name/cct_7_3x1_32-cifar10"': '"pushed-cct"'}, prepare=pushed_cct_folder, check=check_pipeline_output
    ),
    "trainer-finetune": Run(
        {"max_steps=300": "max_steps=2", "per_device_train_batch_size=64": "per_device_train_batch_size=16",
         'eval_dataset=dataset["test"]': 'eval_dataset=dataset["test"].select(range(32))'},
        check=check_trainer,
    ),
    "vitok-autoencode": Run(
        {'from_preset("S-B/16")': 'from_preset("S-B/16", encoder_width=32, encoder_depth=1, encoder_heads=2, '
                                  'decoder_width=32, decoder_depth=1, decoder_heads=2)'},
        check=check_vitok_shapes,
    ),
    "vitok-v2": Run(
        # The published 350M weights are 1.4 GB; the official-format test files hold a tiny v2 model.
        {'load_vitok_v2("philippehansen/ViTok-v2-350M-f16x16")':
         f'load_vitok_v2({str(ROOT / "tests/data/vitok_v2")!r}, variant="Bd2w128h2-Bd3w128h2/1x8x4")'},
        check=check_vitok_v2,
    ),
    "dit-generate": Run({"num_inference_steps=50": "num_inference_steps=2"}, prepare=dit_demo_folder, check=check_dit),
    "convert-cct": Run(
        {'"cct_7_3x1_32_cifar10_300epochs.pth"': repr(str(ROOT / "tests/data/cct/cct_2_3x2_32.official.safetensors")),
         'preset="cct_7_3x1_32"': 'preset="cct_2_3x2_32"'},
        check=check_conversion,
    ),
    "push-to-hub": Run(prepare=training_run_folder),
}


def test_every_python_block_is_a_named_snippet_with_a_run():
    assert README.count("```python") == len(SNIPPET.findall(README))
    assert set(SNIPPETS) == set(RUNS)
    assert all(snippet.flags <= FLAGS for snippet in SNIPPETS.values())


@pytest.mark.parametrize("name", list(RUNS))
def test_readme_snippet_runs(name, tmp_path, monkeypatch):
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
    uploads = RecordingUploads()
    monkeypatch.setattr(HfApi, "create_repo", uploads.create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", uploads.upload_folder)
    if run.prepare is not None:
        run.prepare(tmp_path)

    namespace: dict = {"__name__": f"readme_{name.replace('-', '_')}"}
    exec(compile(code, f"README.md[{name}]", "exec"), namespace)

    if run.check is not None:
        run.check(namespace, tmp_path)
    if "needs-hub" in snippet.flags and "push_to_hub" in code:
        assert {"README.md", "config.json", "model.safetensors", "modeling_cct.py", "all_results.json"} <= set(uploads.files)
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
        return f"-m {words[index + 1]}", words[index + 2:]
    index = next(i for i, word in enumerate(words) if word.endswith(".py"))
    return words[index], words[index + 1:]


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
