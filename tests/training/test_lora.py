"""LoRA fine-tuning of CCT and TextCCT with PEFT (`hf_compact.lora`): what trains, Trainer, save / load / merge
equality, and the upload with its card."""

import inspect
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl
from peft import PeftModel
from safetensors.torch import load_file
from transformers import Trainer, TrainingArguments

from hf_compact import CCTConfig, CCTForImageClassification, TextCCTConfig, TextCCTForSequenceClassification
from hf_compact.lora import CCT_LORA_MODULES_TO_SAVE, CCT_LORA_TARGET_MODULES, apply_lora, push_lora_adapter


def vision_inputs(batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(batch_size, 3, 16, 16, generator=torch.Generator().manual_seed(seed))}


def text_inputs(batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    attention_mask = torch.ones(batch_size, 12, dtype=torch.long)
    attention_mask[1, 8:] = 0
    attention_mask[2, :3] = 0
    return {"input_ids": torch.randint(1, 50, (batch_size, 12), generator=generator), "attention_mask": attention_mask}


@pytest.fixture(params=["vision", "text"])
def family(request, tiny_cct, tiny_text_cct):
    """(base model factory, inputs factory) of each family, the base rebuilt with the same weights on every call."""
    if request.param == "vision":
        return (lambda: tiny_cct(num_labels=3)), vision_inputs
    return (lambda: tiny_text_cct(num_labels=3)), text_inputs


def randomize_adapters(model: PeftModel, seed: int = 1) -> None:
    """As after training: LoRA's B matrices start at zero (the adapted model equals its base), so give the
    adapters and the saved classifier values of their own."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name or ".modules_to_save." in name:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))


def logits(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**inputs).logits


def test_only_the_attention_adapters_and_the_classifier_train(family):
    make_base, _ = family
    model = apply_lora(make_base(), rank=4)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable and all(
        (".lora_A." in name or ".lora_B." in name)
        and name.split(".")[-4] in CCT_LORA_TARGET_MODULES
        or ".classifier.modules_to_save." in name
        for name in trainable
    ), trainable
    adapted = {name.split(".lora_")[0] for name in trainable if ".lora_" in name}
    attention = {name for name, module in make_base().named_modules() if name.endswith(("attention.qkv", "out_proj"))}
    assert {name.removeprefix("base_model.model.") for name in adapted} == attention
    assert any(".classifier.modules_to_save." in name for name in trainable)
    trainable_count, total = model.get_nb_trainable_parameters()
    # rank 4 on a width-32 layer: qkv (32 + 96) * 4 + out_proj (32 + 32) * 4 = 768, classifier 32 * 3 + 3 = 99.
    assert trainable_count == 768 + 99
    assert trainable_count / total < 0.1  # of a 10k-28k parameter model


@pytest.mark.parametrize(
    "model_class, config",
    [
        (CCTForImageClassification, CCTConfig.from_preset("cct_7_3x1_32")),
        (TextCCTForSequenceClassification, TextCCTConfig.from_preset("text_cct_2", vocab_size=1000, num_labels=2)),
    ],
    ids=["cct_7_3x1_32", "text_cct_2"],
)
def test_official_sizes_train_a_small_fraction(model_class, config):
    model = apply_lora(model_class(config), rank=8)
    trainable, total = model.get_nb_trainable_parameters()
    layers, width = config.num_hidden_layers, config.hidden_size
    assert trainable == layers * (width + 3 * width + width + width) * 8 + (width + 1) * config.num_labels
    assert trainable / total < 0.03


def test_trainer_updates_the_adapters_and_classifier_only(tmp_path, tiny_cct):
    model = apply_lora(tiny_cct(num_labels=3), rank=4)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    rows = [{"pixel_values": torch.randn(3, 16, 16, generator=generator), "labels": index % 3} for index in range(16)]
    arguments = TrainingArguments(
        tmp_path,
        max_steps=3,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        label_names=["labels"],
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=rows, eval_dataset=rows)
    trainer.train()
    assert trainer.evaluate()["eval_loss"] > 0  # labels reach the loss through the PEFT wrapper
    changed = {name for name, parameter in model.named_parameters() if not torch.equal(parameter, before[name])}
    assert changed == {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert any(".lora_A." in name for name in changed) and any(".modules_to_save." in name for name in changed)


def test_saved_adapter_loads_on_a_fresh_base_with_the_same_logits(tmp_path, family):
    make_base, make_inputs = family
    model = apply_lora(make_base(), rank=4)
    randomize_adapters(model)
    inputs = make_inputs()
    expected = logits(model, inputs)
    assert not torch.allclose(expected, logits(make_base(), inputs))  # the adapters change the model
    model.save_pretrained(tmp_path)

    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert any("classifier" in key for key in saved)  # the classifier travels in full
    assert not any("mlp" in key or "layernorm" in key for key in saved)  # frozen weights do not
    reloaded = PeftModel.from_pretrained(make_base(), tmp_path)
    torch.testing.assert_close(logits(reloaded, inputs), expected, rtol=0, atol=0)


def test_merged_model_gives_the_same_logits(family):
    make_base, make_inputs = family
    model = apply_lora(make_base(), rank=4)
    randomize_adapters(model)
    inputs = make_inputs()
    expected = logits(model, inputs)
    merged = model.merge_and_unload()
    assert type(merged) in (CCTForImageClassification, TextCCTForSequenceClassification)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, inputs), expected, rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_named(tiny_cct):
    with pytest.raises(TypeError, match="model: expected a CCT-family model"):
        apply_lora(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"target_modules: .*\['query'\]"):
        apply_lora(tiny_cct(), target_modules=["query"])
    with pytest.raises(ValueError, match="modules_to_save"):
        apply_lora(tiny_cct(), modules_to_save=["head"])
    with pytest.raises(ValueError, match="rank: expected a positive int, got 0"):
        apply_lora(tiny_cct(), rank=0)
    with pytest.raises(ValueError, match="dropout"):
        apply_lora(tiny_cct(), dropout=1.0)


class RecordingHub(HfApi):
    """Stands in for the Hub: checks each call against `HfApi`'s signature and keeps the uploaded files."""

    def __init__(self):
        super().__init__(token=False)
        self.calls: list[str] = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, repo_id, **kwargs):
        inspect.signature(HfApi.create_repo).bind(self, repo_id, **kwargs)
        self.calls.append("create_repo")
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        inspect.signature(HfApi.upload_folder).bind(self, **kwargs)
        self.calls.append("upload_folder")
        folder = Path(kwargs["folder_path"])
        self.uploaded = {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*")}
        url = f"https://huggingface.co/{kwargs['repo_id']}/commit/{'0' * 40}"
        return CommitInfo(commit_url=url, commit_message=kwargs["commit_message"], commit_description="", oid="0" * 40)


def test_push_uploads_the_adapter_with_a_card(tmp_path, tiny_cct):
    model = apply_lora(tiny_cct(num_labels=3), rank=4)
    randomize_adapters(model)
    hub = RecordingHub()
    push_lora_adapter(
        model,
        "someone/cct-lora",
        base_model="someone/cct-digits",
        metrics={"eval_accuracy": 0.975, "note": "not a number"},
        dataset="digits",
        local_dir=tmp_path / "staged",
        api=hub,
    )
    assert hub.calls == ["create_repo", "upload_folder"]
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(hub.uploaded)
    adapter_config = json.loads(hub.uploaded["adapter_config.json"])
    assert adapter_config["base_model_name_or_path"] == "someone/cct-digits"
    assert set(adapter_config["target_modules"]) == set(CCT_LORA_TARGET_MODULES)
    assert adapter_config["modules_to_save"] == list(CCT_LORA_MODULES_TO_SAVE)
    card = ModelCard(hub.uploaded["README.md"].decode())
    assert card.data.library_name == "peft"
    assert card.data.base_model == "someone/cct-digits"
    assert card.data.pipeline_tag == "image-classification"
    assert "lora" in card.data.tags
    assert 'PeftModel.from_pretrained(base, "someone/cct-lora")' in card.text
    assert "| eval_accuracy | 0.975 |" in card.text and "not a number" not in card.text
    assert "867 adapter parameters" in card.text  # 768 LoRA + 99 classifier
    # The model keeps its own record; the staged folder loads back with the same logits.
    assert model.peft_config["default"].base_model_name_or_path != "someone/cct-digits"
    reloaded = PeftModel.from_pretrained(tiny_cct(num_labels=3), tmp_path / "staged")
    torch.testing.assert_close(logits(reloaded, vision_inputs()), logits(model, vision_inputs()), rtol=0, atol=0)


def test_push_refuses_what_is_not_a_cct_adapter(tmp_path, tiny_cct):
    with pytest.raises(TypeError, match="model: expected a PeftModel"):
        push_lora_adapter(tiny_cct(), "someone/cct", api=RecordingHub())
    (tmp_path / "file.txt").write_text("taken")
    with pytest.raises(ValueError, match="local_dir"):
        push_lora_adapter(apply_lora(tiny_cct()), "someone/cct", local_dir=tmp_path, api=RecordingHub())


def test_lora_arguments_wrap_only_with_a_rank_and_tell_trainer_the_labels(tmp_path, tiny_cct):
    """The Trainer scripts' `--lora_*` flags: no rank, the model itself and `label_names` untouched; a rank, the
    adapters of `apply_lora` and `label_names=["labels"]`."""
    from transformers import HfArgumentParser

    from hf_compact.lora import LoraArguments

    model, training_args = tiny_cct(num_labels=3), TrainingArguments(tmp_path, report_to="none")
    assert LoraArguments().apply(model, training_args) is model and training_args.label_names is None
    (lora_args,) = HfArgumentParser(LoraArguments).parse_args_into_dataclasses(
        ["--lora_rank", "4", "--lora_target_modules", "qkv"]
    )
    wrapped = lora_args.apply(model, training_args)
    assert isinstance(wrapped, PeftModel) and training_args.label_names == ["labels"]
    config = wrapped.peft_config["default"]
    assert config.r == 4 and config.lora_alpha == 4 and set(config.target_modules) == {"qkv"}
