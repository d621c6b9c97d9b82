"""Text Compact Transformers: parameter counts of the official builders, padding masks, the official reference
logits, save/load, Auto classes and pipeline, word vectors, tokenizer helper, bad input."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertTokenizerFast,
    pipeline,
)

from hf_compact import (
    TEXT_CCT_PRESETS,
    CCTConfig,
    CCTForImageClassification,
    TextCCTConfig,
    TextCCTForSequenceClassification,
    TextCCTModel,
    load_word_vectors,
    train_word_level_tokenizer,
)
from hf_compact.cct import sinusoidal_position_table
from hf_compact.cct.convert_text_cct_original import config_from_state_dict, convert_state_dict
from hf_compact.cct.convert_text_cct_original import main as convert_main

DATA = Path(__file__).parents[1] / "data" / "text_cct"

# Tiny versions of the four families (word vectors 12 wide, i.e. not the official 300).
FAMILIES = {
    "transformer": {
        "tokenizer_type": "none",
        "pooling_type": "cls",
        "hidden_size": 12,
        "intermediate_size": 24,
    },
    "vit": {"tokenizer_type": "patch", "patch_size": 4, "pooling_type": "cls"},
    "cvt": {"tokenizer_type": "patch", "patch_size": 4, "pooling_type": "seq_pool"},
    "cct_k1": {"tokenizer_type": "conv", "conv_kernel_size": 1},
    "cct_k2": {"tokenizer_type": "conv", "conv_kernel_size": 2},
    "cct_k4": {"tokenizer_type": "conv", "conv_kernel_size": 4},
    "cct_k6": {"tokenizer_type": "conv", "conv_kernel_size": 6},  # stride 2: pooling windows straddle the end
}
TEXTS = [
    "the team won the match with a late goal",
    "shares fell as the market reacted to the bank profit warning",
    "scientists measured the energy of the planet",
    "a late goal",
]


def tiny_config(family: str = "cct_k2", **overrides) -> TextCCTConfig:
    arguments = {
        "vocab_size": 50,
        "word_embedding_dim": 12,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 24,
        "num_labels": 3,
        **FAMILIES[family],
        **overrides,
    }
    return TextCCTConfig(**arguments)


def right_padded(lengths: list[int], num_words: int, vocab_size: int = 50, pad_token_id: int = 1):
    """Random word ids `(batch, num_words)` padded with `pad_token_id` after `lengths[i]` words, and the mask."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(2, vocab_size, (len(lengths), num_words), generator=generator)
    attention_mask = (torch.arange(num_words)[None, :] < torch.tensor(lengths)[:, None]).long()
    return input_ids.masked_fill(attention_mask == 0, pad_token_id), attention_mask


# ----------------------------------------------------------------------------------------------- parameter counts

# Trainable parameters of the official builders (SHI-Labs/Compact-Transformers `src/text/`), without the
# 100000 x 300 word embedding, 1000 classes (sine PE, which is not trainable).
OFFICIAL_TRAINABLE_WITHOUT_EMBEDDING = {
    ("text_transformer_2", None): 1_386_100,
    ("text_transformer_4", None): 2_470_300,
    ("text_transformer_6", None): 4_636_300,
    ("text_vit_2", None): 481_384,
    ("text_vit_4", None): 679_784,
    ("text_vit_6", None): 3_722_984,
    ("text_cvt_2", None): 481_385,
    ("text_cvt_4", None): 679_785,
    ("text_cvt_6", None): 1_075_561,
    ("text_cct_2", 4): 481_385,
    ("text_cct_2", 1): 366_185,
    ("text_cct_2", 2): 404_585,
    ("text_cct_4", 4): 679_785,
    ("text_cct_4", 1): 564_585,
    ("text_cct_4", 2): 602_985,
    ("text_cct_6", 4): 3_722_985,
    ("text_cct_6", 1): 3_492_585,
    ("text_cct_6", 2): 3_569_385,
}
# nlp/README "# Params" (AG News, 4 classes), reproduced exactly by the spec's arithmetic (e.g. 366,185 - 996 x 129).
NLP_README_PARAMS = {
    ("text_cct_2", 1): 237_701,
    ("text_cct_2", 2): 276_101,
    ("text_cct_2", 4): 352_901,
    ("text_cct_4", 1): 436_101,
    ("text_cct_4", 2): 474_501,
    ("text_cct_4", 4): 551_301,
    ("text_cct_6", 1): 3_236_613,
    ("text_cct_6", 2): 3_313_413,
    ("text_cct_6", 4): 3_467_013,
}


def count_parameters(preset: str, kernel_size: int | None, **overrides) -> tuple[int, int]:
    """(trainable parameters without the word embedding, trainable parameters), built on the meta device."""
    if kernel_size is not None:
        overrides["conv_kernel_size"] = kernel_size
    with torch.device("meta"):
        model = TextCCTForSequenceClassification(TextCCTConfig.from_preset(preset, **overrides))
    trainable = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
    without_embedding = sum(n for name, n in trainable.items() if "word_embeddings" not in name)
    return without_embedding, sum(trainable.values())


@pytest.mark.parametrize(("preset", "kernel_size"), list(OFFICIAL_TRAINABLE_WITHOUT_EMBEDDING))
def test_parameter_counts_match_the_official_builders(preset, kernel_size):
    without_embedding, trainable = count_parameters(preset, kernel_size)
    assert without_embedding == OFFICIAL_TRAINABLE_WITHOUT_EMBEDDING[preset, kernel_size]
    assert trainable == without_embedding + 100_000 * 300  # the spec's "trainable" column


@pytest.mark.parametrize(("preset", "kernel_size"), list(NLP_README_PARAMS))
def test_parameter_counts_match_the_nlp_readme(preset, kernel_size):
    assert count_parameters(preset, kernel_size, num_labels=4)[0] == NLP_README_PARAMS[preset, kernel_size]


def test_presets_cover_every_official_builder_with_its_defaults():
    families = ("transformer", "vit", "cvt", "cct")
    assert set(TEXT_CCT_PRESETS) == {f"text_{family}_{size}" for family in families for size in (2, 4, 6)}
    config = TextCCTConfig.from_preset("text_cct_2", conv_kernel_size=1, num_labels=4)
    assert (config.conv_kernel_size, config.conv_stride, config.conv_padding, config.num_labels) == (
        1,
        1,
        1,
        4,
    )
    assert (config.vocab_size, config.word_embedding_dim, config.max_position_embeddings) == (100000, 300, 64)
    assert config.position_embedding_type == "sine" and config.pad_token_id == 1
    assert TextCCTConfig.from_preset("text_cvt_6", id2label={0: "a", 1: "b"}).num_labels == 2
    with pytest.raises(ValueError, match="Unknown text CCT preset 'text_cct_8'"):
        TextCCTConfig.from_preset("text_cct_8")


def test_official_token_counts_and_position_tables():
    """64 words -> 33 tokens (k=4, k=2), 34 (k=1), 16 patches; one more row for a class token; sine = the table."""
    expected_rows = {"text_cct_2": 33, "text_vit_2": 17, "text_cvt_2": 16, "text_transformer_2": 65}
    for preset, rows in expected_rows.items():
        model = TextCCTModel(TextCCTConfig.from_preset(preset, vocab_size=10))
        table = model.embeddings.position_embeddings
        assert table.shape == (1, rows, model.config.hidden_size)
        torch.testing.assert_close(table[0], sinusoidal_position_table(rows, model.config.hidden_size))
    assert TextCCTModel(TextCCTConfig(vocab_size=10, conv_kernel_size=1)).embeddings.position_embeddings.shape[1] == 34


# ------------------------------------------------------------------------------------------------- padding masks


@pytest.mark.parametrize("position_embedding_type", ["sine", "learnable", "none"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_padded_batch_gives_the_logits_of_each_sequence_alone(family, position_embedding_type):
    model = TextCCTForSequenceClassification(tiny_config(family, position_embedding_type=position_embedding_type))
    model.eval()
    lengths = [24, 17, 9, 4, 6]
    input_ids, attention_mask = right_padded(lengths, 24)
    with torch.no_grad():
        batched = model(input_ids, attention_mask=attention_mask).logits
        alone = torch.cat([model(input_ids[i : i + 1, :length]).logits for i, length in enumerate(lengths)])
        alone_with_mask = model(input_ids[1:2, :17], attention_mask=torch.ones(1, 17, dtype=torch.long)).logits
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone_with_mask, alone[1:2], atol=1e-6, rtol=1e-6)
    # The mask matters: without it the padding words change the result.
    with torch.no_grad():
        unmasked = model(input_ids).logits
    assert not torch.allclose(unmasked[1:], batched[1:], atol=1e-4)


def test_padding_mask_with_sdpa_and_eager_attention_agree():
    model = TextCCTForSequenceClassification(tiny_config("cct_k4", position_embedding_type="learnable")).eval()
    input_ids, attention_mask = right_padded([24, 10, 3], 24)
    with torch.no_grad():
        sdpa = model(input_ids, attention_mask=attention_mask).logits
        model.set_attn_implementation("eager")
        eager = model(input_ids, attention_mask=attention_mask, output_attentions=True)
    torch.testing.assert_close(eager.logits, sdpa, atol=1e-6, rtol=1e-6)
    # 24 words -> 13 tokens with kernel 4 (stride 1, padding 2) and pooling (2, 2, 1); padded tokens get no attention.
    assert len(eager.attentions) == 2 and eager.attentions[0].shape == (3, 2, 13, 13)
    third_sequence_tokens = model.text_cct.embeddings.num_tokens(3)
    assert torch.all(eager.attentions[0][2, :, :, third_sequence_tokens:] == 0)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_left_padding_and_masked_words_give_the_outputs_of_right_padding(attn_implementation):
    """The real words are packed to the front before the tokenizer: left padding, or padding between words, gives
    the outputs of the same words padded on the right, from `input_ids` and from `inputs_embeds`."""
    model = TextCCTModel(tiny_config("cct_k4", position_embedding_type="learnable")).eval()
    model.set_attn_implementation(attn_implementation)
    right_ids, right_mask = right_padded([24, 10, 5], 24)
    left_ids, left_mask = torch.full_like(right_ids, 1), torch.zeros_like(right_mask)  # pad_token_id 1
    for row, length in enumerate([24, 10, 5]):
        left_ids[row, 24 - length :], left_mask[row, 24 - length :] = right_ids[row, :length], 1
    holes_ids, holes_mask = (
        right_ids.clone(),
        right_mask.clone(),
    )  # the 5 words of row 2 at positions 0, 4, ..., 16
    holes_ids[2], holes_mask[2] = 1, 0
    holes_ids[2, 0:20:4], holes_mask[2, 0:20:4] = right_ids[2, :5], 1
    embed = model.get_input_embeddings()
    with torch.no_grad():
        expected = model(right_ids, attention_mask=right_mask)
        for ids, mask in ((left_ids, left_mask), (holes_ids, holes_mask)):
            for inputs in ({"input_ids": ids}, {"inputs_embeds": embed(ids)}):
                outputs = model(**inputs, attention_mask=mask)
                torch.testing.assert_close(outputs.pooler_output, expected.pooler_output, rtol=0, atol=0)
                torch.testing.assert_close(outputs.last_hidden_state, expected.last_hidden_state, rtol=0, atol=0)


def test_hidden_states_and_inputs_embeds():
    model = TextCCTModel(tiny_config("vit")).eval()
    input_ids, attention_mask = right_padded([24, 8], 24)
    with torch.no_grad():
        outputs = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        from_vectors = model(inputs_embeds=model.get_input_embeddings()(input_ids), attention_mask=attention_mask)
    assert outputs.last_hidden_state.shape == (2, 7, 16)  # class token + 24 / 4 patches
    assert outputs.pooler_output.shape == (2, 16) and len(outputs.hidden_states) == 3  # embeddings + 2 layers
    torch.testing.assert_close(from_vectors.pooler_output, outputs.pooler_output)


# ------------------------------------------------------------------------------------------ official checkpoints


def load_reference_case():
    return (
        load_file(DATA / "text_cct_2.official.safetensors"),
        load_file(DATA / "text_cct_2.io.safetensors"),
        json.loads((DATA / "cases.json").read_text())["text_cct_2"],
    )


def test_converted_official_model_gives_the_official_logits():
    state_dict, io, case = load_reference_case()
    config = config_from_state_dict(state_dict, "text_cct_2")
    assert (config.conv_kernel_size, config.num_labels) == (
        case["kwargs"]["kernel_size"],
        case["kwargs"]["num_classes"],
    )
    assert (config.vocab_size, config.position_embedding_type, config.pad_token_id) == (1000, "none", 1)
    model = TextCCTForSequenceClassification(config).eval()
    model.load_state_dict(convert_state_dict(state_dict, config))
    assert model.num_parameters() == case["params"]
    with torch.no_grad():
        logits = model(io["input_ids"]).logits
        logits_with_mask = model(io["input_ids"], attention_mask=torch.ones_like(io["input_ids"])).logits
    torch.testing.assert_close(logits, io["logits"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits_with_mask, io["logits"], atol=1e-5, rtol=1e-5)


def test_converter_command_line_writes_a_loadable_folder(tmp_path):
    state_dict, io, _ = load_reference_case()
    checkpoint = tmp_path / "text_cct2-2_agnews.pth"
    torch.save(state_dict, checkpoint)
    output_dir = convert_main(
        [
            "--checkpoint",
            str(checkpoint),
            "--preset",
            "text_cct_2",
            "--output_dir",
            str(tmp_path / "hf"),
            "--labels",
            "world",
            "sports",
            "business",
            "science",
        ]
    )
    model = AutoModelForSequenceClassification.from_pretrained(output_dir).eval()
    assert model.config.id2label[1] == "sports"
    with torch.no_grad():
        torch.testing.assert_close(model(io["input_ids"]).logits, io["logits"], atol=1e-5, rtol=1e-5)


def test_converter_rejects_foreign_keys_and_mismatched_shapes():
    state_dict, _, _ = load_reference_case()
    config = config_from_state_dict(state_dict, "text_cct_2")
    with pytest.raises(ValueError, match="not part of an official text model: 'classifier.head.weight'"):
        convert_state_dict({**state_dict, "classifier.head.weight": torch.zeros(1)}, config)
    with pytest.raises(ValueError, match=r"has shape \(128, 300, 2\), but the config expects \(128, 300, 4\)"):
        convert_state_dict(state_dict, TextCCTConfig.from_preset("text_cct_2", vocab_size=1000, num_labels=4))
    with pytest.raises(ValueError, match="not an official text model"):
        config_from_state_dict({"classifier.fc.weight": torch.zeros(4, 128)}, "text_cct_2")


def test_converter_reads_official_position_tables():
    """The official tables have a leading "padding" row: dropped from a learnable table; a sine table is rebuilt."""
    state_dict, _, _ = load_reference_case()
    sine_rows = sinusoidal_position_table(33, 128)
    official_sine = torch.cat([torch.zeros(1, 128), sine_rows]).unsqueeze(0)
    official_learnable = torch.randn(1, 34, 128)
    sine_config = config_from_state_dict({**state_dict, "classifier.positional_emb": official_sine}, "text_cct_2")
    learnable_config = config_from_state_dict(
        {**state_dict, "classifier.positional_emb": official_learnable}, "text_cct_2"
    )
    assert (sine_config.position_embedding_type, learnable_config.position_embedding_type) == (
        "sine",
        "learnable",
    )
    converted = convert_state_dict({"classifier.positional_emb": official_learnable}, learnable_config)
    torch.testing.assert_close(converted["text_cct.embeddings.position_embeddings"], official_learnable[:, 1:])
    assert convert_state_dict({"classifier.positional_emb": official_sine}, sine_config) == {}


# --------------------------------------------------------------------------------- save / load, Auto*, pipeline


def test_save_load_round_trip_through_auto_classes(tmp_path):
    model = TextCCTForSequenceClassification(tiny_config("cvt", position_embedding_type="learnable")).eval()
    model.save_pretrained(tmp_path)
    reloaded_config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded_config, TextCCTConfig)
    assert reloaded_config.to_diff_dict() == model.config.to_diff_dict()
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded) is TextCCTForSequenceClassification and type(base) is TextCCTModel
    input_ids, attention_mask = right_padded([24, 11], 24)
    with torch.no_grad():
        expected = model(input_ids, attention_mask=attention_mask)
        torch.testing.assert_close(reloaded(input_ids, attention_mask=attention_mask).logits, expected.logits)
        pooled = base(input_ids, attention_mask=attention_mask).pooler_output
    torch.testing.assert_close(model.classifier(pooled), expected.logits)


def test_register_for_auto_class_copies_self_contained_model_files(tmp_path, monkeypatch):
    """`trust_remote_code` users get the four model files; they import only torch, transformers and each other.
    (Loading them in a process without hf_compact was checked by hand: same logits.)"""
    monkeypatch.setattr(TextCCTConfig, "_auto_class", None)
    monkeypatch.setattr(TextCCTForSequenceClassification, "_auto_class", None)
    TextCCTConfig.register_for_auto_class()
    TextCCTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
    TextCCTForSequenceClassification(tiny_config("cct_k4")).save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_text_cct.TextCCTConfig",
        "AutoModelForSequenceClassification": "modeling_text_cct.TextCCTForSequenceClassification",
    }
    copied = {path.name: path for path in tmp_path.glob("*.py")}
    allowed = {"torch", "transformers", "typing", "collections", "math"}
    assert set(copied) == {
        "configuration_text_cct.py",
        "modeling_text_cct.py",
        "configuration_cct.py",
        "modeling_cct.py",
    }
    for path in copied.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert all(alias.name.split(".")[0] in allowed for alias in node.names), path
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] in allowed, path
            elif isinstance(node, ast.ImportFrom):
                assert f"{node.module}.py" in copied, path


def test_pipeline_with_a_trained_word_level_tokenizer(tmp_path):
    tokenizer = train_word_level_tokenizer(TEXTS, model_max_length=24)
    config = tiny_config(
        "cct_k2",
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        id2label={0: "sports", 1: "business", 2: "science"},
    )
    model = TextCCTForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    classifier = pipeline("text-classification", model=str(tmp_path))
    predictions = classifier(TEXTS[:2], top_k=None)
    assert [len(p) for p in predictions] == [3, 3]
    for text, prediction in zip(TEXTS[:2], predictions):
        encoded = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            probabilities = model(**encoded).logits.softmax(-1)[0]
        scores = {item["label"]: item["score"] for item in prediction}
        assert scores == pytest.approx({config.id2label[i]: float(p) for i, p in enumerate(probabilities)}, abs=1e-6)


def test_any_transformers_tokenizer_works_with_its_own_padding_id(tmp_path):
    """A WordPiece (BERT) tokenizer: `[PAD]` = 0, `token_type_ids` in its output, `[CLS]`/`[SEP]` around words."""
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "great", "dull", "##s"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocabulary))
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    config = tiny_config("cct_k4", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    model = TextCCTForSequenceClassification(config).eval()
    texts = ["the great films", "dull"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert "token_type_ids" in batch and batch["input_ids"][1, -1] == 0
    with torch.no_grad():
        batched = model(**batch).logits
        alone = torch.cat([model(**tokenizer(text, return_tensors="pt")).logits for text in texts])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_word_level_tokenizer_ids_padding_and_dataset_column(tmp_path):
    dataset = Dataset.from_dict({"sentence": TEXTS, "label": [0, 1, 2, 0]})
    tokenizer = train_word_level_tokenizer(dataset, text_column="sentence", min_frequency=1, model_max_length=8)
    assert (tokenizer.unk_token_id, tokenizer.pad_token_id) == (0, 1) == (0, TextCCTConfig().pad_token_id)
    batch = tokenizer(["The TEAM won", "zebra"], padding=True, return_tensors="pt")
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["input_ids"][1].tolist() == [0, 1, 1]  # unknown word, then right padding
    assert tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist()) == ["the", "team", "won"]
    assert len(tokenizer("a " * 20, truncation=True)["input_ids"]) == 8
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)("the team")["input_ids"] == tokenizer("the team")["input_ids"]
    frequent_only = train_word_level_tokenizer(TEXTS, min_frequency=2)
    assert "the" in frequent_only.get_vocab() and "planet" not in frequent_only.get_vocab()
    with pytest.raises(ValueError, match="`text_column` 'text' is not a column"):
        train_word_level_tokenizer(dataset)
    with pytest.raises(TypeError, match="`texts` must yield strings"):
        train_word_level_tokenizer([1, 2])


# ---------------------------------------------------------------------------------------------- word vectors


def test_word_vectors_from_npy_safetensors_and_glove_text(tmp_path):
    vocab = {"<unk>": 0, "<pad>": 1, "goal": 2, "market": 3}
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "vectors.npy", matrix)
    save_file({"weight": torch.from_numpy(matrix)}, tmp_path / "vectors.safetensors")
    (tmp_path / "glove.txt").write_text("goal 0.5 -1 2\nunseen 9 9 9\nmarket 1 2 3\n")
    (tmp_path / "word2vec.txt").write_text("2 3\ngoal 0.5 -1 2\nmarket 1 2 3\n")
    torch.testing.assert_close(load_word_vectors(tmp_path / "vectors.npy"), torch.from_numpy(matrix))
    torch.testing.assert_close(load_word_vectors(tmp_path / "vectors.safetensors"), torch.from_numpy(matrix))
    expected = torch.tensor([[0, 0, 0], [0, 0, 0], [0.5, -1, 2], [1, 2, 3]])
    torch.testing.assert_close(load_word_vectors(tmp_path / "glove.txt", vocab=vocab), expected)
    torch.testing.assert_close(load_word_vectors(tmp_path / "word2vec.txt", vocab=vocab), expected)
    with pytest.raises(ValueError, match="`vocab` .* is required"):
        load_word_vectors(tmp_path / "glove.txt")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_word_vectors(tmp_path / "missing.npy")
    (tmp_path / "broken.txt").write_text("goal 1 2 3\nmarket 1 2\n")
    with pytest.raises(ValueError, match="line 2: expected a word and 3 numbers, got 2"):
        load_word_vectors(tmp_path / "broken.txt", vocab=vocab)


@pytest.mark.parametrize("freeze", [True, False])
def test_pretrained_word_vectors_frozen_or_trainable_survive_save_load(tmp_path, freeze):
    model = TextCCTForSequenceClassification(tiny_config("cct_k1", word_embedding_dim=7))
    vectors = torch.randn(50, 7)
    model.set_word_vectors(vectors, freeze=freeze)
    model.save_pretrained(tmp_path)
    reloaded = TextCCTForSequenceClassification.from_pretrained(tmp_path)
    weight = reloaded.get_input_embeddings().weight
    torch.testing.assert_close(weight, vectors)
    assert weight.requires_grad is not freeze and reloaded.config.freeze_word_embeddings is freeze
    loss = reloaded(torch.tensor([[3, 4, 5]]), labels=torch.tensor([1])).loss
    loss.backward()
    assert (weight.grad is None) is freeze
    with pytest.raises(ValueError, match=r"shape \(vocab_size, word_embedding_dim\) = \(50, 7\), got \(50, 8\)"):
        model.set_word_vectors(torch.randn(50, 8))


def test_padding_word_vector_starts_at_zero_and_gets_no_gradient():
    model = TextCCTForSequenceClassification(tiny_config("transformer", pad_token_id=3))
    weight = model.get_input_embeddings().weight
    assert torch.all(weight[3] == 0) and weight[4].abs().sum() > 0
    model(torch.tensor([[3, 4, 5]]), labels=torch.tensor([0])).loss.backward()
    assert torch.all(weight.grad[3] == 0) and weight.grad[4].abs().sum() > 0


# ------------------------------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors():
    model = TextCCTForSequenceClassification(tiny_config("vit")).eval()
    ids = torch.randint(2, 50, (2, 8))
    cases = [
        (
            {"input_ids": torch.tensor([[3, 50, 4, 5]])},
            ValueError,
            r"`input_ids` must be in \[0, 50\).*got \[50\]",
        ),
        ({"input_ids": torch.tensor([[3, -2, 4, 5]])}, ValueError, r"got \[-2\]"),
        (
            {"input_ids": ids.float()},
            TypeError,
            r"`input_ids` must be an int64 torch.Tensor of shape \(batch_size, num_words\), got dtype torch.float32",
        ),
        ({"input_ids": ids.to(torch.uint8)}, TypeError, "got dtype torch.uint8"),
        ({"input_ids": ids.tolist()}, TypeError, r"`input_ids` must be an int64 torch.Tensor .* got list\.$"),
        ({"input_ids": ids[0]}, ValueError, r"shape \(batch_size, num_words\), got shape \(8,\)"),
        ({"input_ids": ids[:, :0]}, ValueError, "empty"),
        (
            {"input_ids": ids, "attention_mask": torch.ones(2, 7)},
            ValueError,
            r"`attention_mask` must be a torch.Tensor of shape \(2, 8\), got shape \(2, 7\)",
        ),
        (
            {"input_ids": ids, "attention_mask": torch.tensor([[1] * 8, [0] * 8])},
            ValueError,
            r"Sequences \[1\] are empty",
        ),
        (
            {"input_ids": ids, "attention_mask": torch.tensor([[1] * 8, [1] * 3 + [0] * 5])},
            ValueError,
            r"Sequences \[1\] have \[3\] words, fewer than the 4 that the 'patch' tokenizer",
        ),
        (
            {"input_ids": torch.randint(2, 50, (1, 25))},
            ValueError,
            "25 words per sequence, more than config.max_position_embeddings=24",
        ),
        (
            {"inputs_embeds": torch.randn(2, 8, 11)},
            ValueError,
            r"`inputs_embeds` must be a floating-point torch.Tensor of shape \(batch_size, num_words, 12\), got shape "
            r"\(2, 8, 11\)",
        ),
        ({"input_ids": ids, "inputs_embeds": torch.randn(2, 8, 12)}, ValueError, "exactly one of"),
        ({"input_ids": ids, "labels": torch.tensor([0, 3])}, ValueError, r"class indices in \[0, 3\)"),
    ]
    for inputs, error, message in cases:
        with pytest.raises(error, match=message):
            model(**inputs)


def test_invalid_configurations_are_rejected():
    with pytest.raises(ValueError, match="`tokenizer_type` must be one of"):
        TextCCTConfig(tokenizer_type="lstm")
    with pytest.raises(ValueError, match="`hidden_size` must equal `word_embedding_dim`"):
        TextCCTConfig(tokenizer_type="none", hidden_size=128, word_embedding_dim=300)
    with pytest.raises(ValueError, match=r"`pad_token_id` must be in \[0, vocab_size=10\), got 10"):
        TextCCTConfig(vocab_size=10, pad_token_id=10)
    with pytest.raises(ValueError, match="`max_position_embeddings`=3 words are too few"):
        TextCCTModel(tiny_config("vit", max_position_embeddings=3))


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"vocab_size": "50"}, TypeError, "`vocab_size` must be an int, got str '50'."),
        ({"word_embedding_dim": 12.0}, TypeError, "`word_embedding_dim` must be an int, got float 12.0."),
        ({"freeze_word_embeddings": 1}, TypeError, "`freeze_word_embeddings` must be a bool, got int 1."),
        ({"pad_token_id": "1"}, TypeError, "`pad_token_id` must be an int or None, got str '1'."),
        ({"num_hidden_layers": -2}, ValueError, "`num_hidden_layers` must be at least 1, got -2."),
        ({"max_position_embeddings": 0}, ValueError, "`max_position_embeddings` must be at least 1, got 0."),
        ({"word_embedding_init_std": -1.0}, ValueError, "`word_embedding_init_std` must be non-negative, got -1.0."),
        ({"num_labels": 0}, ValueError, "`num_labels` must be at least 1"),
        (
            {"id2label": {0: "sport", 1: None}, "num_labels": 2},
            TypeError,
            r"`id2label` must map class ids to strings, got None",
        ),
    ],
)
def test_config_fields_are_type_and_range_checked(arguments, error, message):
    with pytest.raises(error, match=message):
        tiny_config(**arguments)


PAPER_NAMES = {"transformer": "TextTransformerLite", "vit": "TextViTLite", "cvt": "TextCVT", "cct": "TextCCT"}


@pytest.mark.parametrize("name", sorted(TEXT_CCT_PRESETS))
def test_every_preset_knows_its_paper_name(name):
    _, family, layers = name.split("_")
    assert TextCCTConfig.from_preset(name).paper_name == f"{PAPER_NAMES[family]}-{layers}"
    assert tiny_config("cct_k2", num_hidden_layers=3).paper_name == "TextCCT-3"


# --- input embeddings, dtype, labels ---------------------------------------------------------------------------------


def test_get_and_set_input_embeddings():
    model = TextCCTForSequenceClassification(tiny_config())
    assert model.get_input_embeddings() is model.text_cct.embeddings.word_embeddings
    replacement = torch.nn.Embedding(50, 12)
    model.set_input_embeddings(replacement)
    assert model.get_input_embeddings() is replacement and model.text_cct.embeddings.word_embeddings is replacement


def test_input_require_grads_let_gradients_through_checkpointed_layers():
    """PEFT's recipe: frozen weights, reentrant gradient checkpointing (which calls `enable_input_require_grads()`
    for `input_ids` models), an adapter weight inside a checkpointed layer."""
    torch.manual_seed(0)
    model = TextCCTForSequenceClassification(tiny_config(attention_probs_dropout_prob=0.0, drop_path_rate=0.0)).train()
    model.requires_grad_(False)
    adapter = model.text_cct.encoder.layers[0].mlp.fc1.weight
    adapter.requires_grad_(True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    captured = {}
    model.get_input_embeddings().register_forward_hook(lambda module, args, output: captured.update(vectors=output))
    input_ids, attention_mask = right_padded([6, 4], 6)
    model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1])).loss.backward()
    assert captured["vectors"].requires_grad
    assert adapter.grad is not None and adapter.grad.abs().sum() > 0
    model.disable_input_require_grads()  # without the hooks the checkpointed layers cut the graph
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
        assert not model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1])).loss.requires_grad
    model.enable_input_require_grads()
    assert model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1])).loss.requires_grad


def test_sine_position_table_follows_the_load_dtype(tmp_path):
    TextCCTForSequenceClassification(tiny_config(position_embedding_type="sine")).save_pretrained(tmp_path)
    model = TextCCTForSequenceClassification.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert model.text_cct.embeddings.position_embeddings.dtype == torch.bfloat16
    input_ids, attention_mask = right_padded([6, 4], 6)
    assert model(input_ids, attention_mask=attention_mask).logits.dtype == torch.bfloat16


def test_labels_of_another_batch_size_or_float_class_labels_raise():
    model = TextCCTForSequenceClassification(tiny_config())
    input_ids, attention_mask = right_padded([6, 4], 6)
    with pytest.raises(ValueError, match=r"`labels` must be an int64 torch.Tensor of shape \(2,\), got shape \(1,\)"):
        model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0]))
    with pytest.raises(TypeError, match=r"`labels` must be an int64 torch.Tensor of shape \(2,\), got dtype"):
        model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize(
    "labels", [torch.tensor([0, 3]), torch.tensor([0]), torch.tensor([0.0, 2.0]), [0, 1], torch.ones(2, 2)]
)
def test_vision_and_text_heads_check_labels_alike(labels):
    text_model = TextCCTForSequenceClassification(tiny_config())
    vision_model = CCTForImageClassification(
        CCTConfig(image_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_labels=3)
    )
    input_ids, attention_mask = right_padded([6, 4], 6)
    with pytest.raises((TypeError, ValueError)) as text_error:
        text_model(input_ids, attention_mask=attention_mask, labels=labels)
    with pytest.raises(text_error.type) as vision_error:
        vision_model(torch.randn(2, 3, 16, 16), labels=labels)
    assert str(vision_error.value) == str(text_error.value)
