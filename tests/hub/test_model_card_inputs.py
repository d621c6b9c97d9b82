"""Model cards and uploads with hostile or unusual inputs: what they interpolate cannot change their structure."""

from __future__ import annotations

import ast
import re

import pytest
import tiny_models
import yaml
from huggingface_hub import ModelCard

from hf_compact.hub import check_repo_id, push_to_hub, render_model_card, save_for_hub

INJECTED_REPO = 'user/m"); import os; os.system("echo pwned'
HOSTILE = "a | b\nsecond line <script>alert(1)</script> `code` [link](javascript:x)"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def cells(row: str) -> list[str]:
    """The cells of a Markdown table row, split as GFM does: on pipes that are not escaped."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def from_pretrained_arguments(snippet: str) -> list[str]:
    """The string literals passed to any call in `snippet`, which must be one valid Python program."""
    tree = ast.parse(snippet)
    return [
        argument.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for argument in [*node.args, *(keyword.value for keyword in node.keywords)]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str)
    ]


@pytest.mark.parametrize("family", ["cct", "text_cct", "vitok", "dit"])
@pytest.mark.parametrize("repo_id", [INJECTED_REPO, "folder/with ```python fence", "C:\\runs\\it's"])
def test_snippet_strings_hold_any_repo_id_or_folder(family, repo_id):
    build = {
        "cct": tiny_models.tiny_cct,
        "text_cct": tiny_models.tiny_text_cct,
        "vitok": tiny_models.tiny_vitok,
        "dit": tiny_models.tiny_dit_3d,
    }[family]
    card = render_model_card(build(), repo_id)  # a local folder may be any path
    (snippet,) = python_blocks(card.text)
    assert repo_id in from_pretrained_arguments(snippet)  # one program, the id one string, nothing executed
    assert "import os" not in [line.strip() for line in snippet.splitlines()]


def test_tables_and_prose_escape_labels_recipe_values_and_metric_names():
    model = tiny_models.tiny_cct(id2label={0: HOSTILE, 1: "plain", 2: "x"})
    card = render_model_card(
        model,
        "someone/cct",
        training_config={"learning_rate": 0.1, "note": HOSTILE, "odd|name": "v"},
        metrics={"eval_accuracy": 0.5, "weird|metric\nname": 1.0},
    )
    text = card.text
    assert "<script>" not in text and "&lt;script&gt;" in text
    for table in re.findall(r"((?:^\|.*\n)+)", text, flags=re.MULTILINE):  # every table keeps its column count
        assert len({len(cells(row)) for row in table.splitlines()}) == 1, table
    recipe = {cells(row)[0].strip(): cells(row)[1].strip() for row in table_rows(text) if "note" in row}
    assert recipe == {
        "`note`": "a \\| b<br>second line &lt;script&gt;alert(1)&lt;/script&gt; \\`code\\` \\[link\\](javascript:x)"
    }
    assert "| `odd\\|name` | v |" in text and "| weird\\|metric<br>name | 1 |" in text
    intended_use = text.split("## Intended use")[1].split("\n## ")[0]
    assert "(a \\| b<br>second line &lt;script&gt;" in intended_use


@pytest.mark.parametrize(
    "dataset",
    ["digits\n---\nlicense: mit", "a: b", ["cifar10", "user/extra: data"], "'; <b>"],
    ids=["front-matter-break", "mapping", "list", "quotes"],
)
def test_front_matter_stays_valid_yaml_for_any_dataset_and_license(dataset):
    card = render_model_card(
        tiny_models.tiny_cct(),
        "someone/cct",
        metrics={"eval_accuracy": 0.75},
        dataset=dataset,
        license="other\n---\nx: y",
    )
    front_matter = re.match(r"---\n(.*?)\n---\n", str(card), flags=re.DOTALL).group(1)  # to the first `---` line
    data = yaml.safe_load(front_matter)
    datasets = [dataset] if isinstance(dataset, str) else dataset
    assert data["datasets"] == datasets and data["license"] == "other\n---\nx: y"
    assert ModelCard(str(card)).data.eval_results[0].dataset_type == datasets[0]


def test_a_list_dataset_name_in_the_training_config():
    card = render_model_card(
        tiny_models.tiny_cct(),
        "someone/cct",
        training_config={"dataset_name": ["cifar10", "cifar100"]},
        metrics={"eval_accuracy": 0.75},
    )
    card = ModelCard(str(card))
    assert card.data.datasets == ["cifar10", "cifar100"]
    assert [result.dataset_type for result in card.data.eval_results] == ["cifar10"]
    assert "on `cifar10`, `cifar100`:" in card.text
    with pytest.raises(TypeError, match=r"dataset: expected a Hub dataset id or a list of them, got \[1\]"):
        render_model_card(tiny_models.tiny_cct(), "someone/cct", dataset=[1])


@pytest.mark.parametrize("repo_id", [INJECTED_REPO, "a/b/c", "", "user/name--x"])
def test_invalid_repo_ids_are_refused_before_anything_is_staged(tmp_path, repo_id):
    staging = tmp_path / "staging"
    with pytest.raises(ValueError, match=r"^repo_id: expected a Hub repository id such as 'user/name', got "):
        push_to_hub(tiny_models.tiny_cct(), repo_id, local_dir=staging)
    with pytest.raises(ValueError, match="^repo_id: "):
        save_for_hub(tiny_models.tiny_cct(), staging, repo_id)
    assert not staging.exists()
    with pytest.raises(ValueError, match="^--hub_model_id: expected a Hub repository id"):
        check_repo_id(repo_id, "--hub_model_id")  # what the training engine checks before training
    check_repo_id("someone/cct-digits_v1.0")
