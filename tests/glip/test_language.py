"""The offline WordPiece tokenizer, tokenize() and the BERT language backbone (official
maskrcnn_benchmark/modeling/language_backbone/bert_model.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from glip.language import (
    LanguageBackbone,
    TextFeatures,
    bert_base_config,
    build_wordpiece_tokenizer,
    load_tokenizer,
    tokenize,
)

WORDS = ["person", "bicycle", "car", "traffic light", "hair drier", "Café", "жук"]


@pytest.fixture(scope="module")
def tok():
    return build_wordpiece_tokenizer(WORDS)


def tiny_config(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=260,
    )


def test_special_tokens_have_bert_ids(tok):
    ids = tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    assert ids == [0, 1, 2, 3, 4]
    assert tok.pad_token_id == 0 and tok.cls_token_id == 2 and tok.sep_token_id == 3


def test_offsets_and_char_to_token(tok):
    caption = "person. Traffic light"
    enc = tok(caption, return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == [
        "[CLS]",
        "person",
        ".",
        "traffic",
        "light",
        "[SEP]",
    ]
    assert enc["offset_mapping"] == [(0, 0), (0, 6), (6, 7), (8, 15), (16, 21), (0, 0)]
    assert [enc.char_to_token(c) for c in (0, 5, 6, 7, 8, 15, 16)] == [1, 1, 2, None, 3, None, 4]


def test_normaliser_lowercases_and_strips_accents(tok):
    assert tok.tokenize("CAFÉ Person") == ["cafe", "person"]


def test_unknown_words_fall_back_to_seen_characters(tok):
    # "bicycles" is not a word of the vocabulary but its characters were seen.
    assert tok.tokenize("bicycles") == ["bicycle", "##s"]
    assert tok.tokenize("жу") == ["ж", "##у"]
    assert "[UNK]" not in tok.tokenize("zebra 42 hair-drier")  # printable ASCII is always in the vocabulary
    # A character never seen has no piece: that word alone becomes [UNK].
    assert tok.tokenize("car ψχ") == ["car", "[UNK]"]


def test_cased_tokenizer_keeps_case():
    cased = build_wordpiece_tokenizer(["Car"], lowercase=False)
    assert cased.tokenize("Car car CAR") == ["Car", "c", "##a", "##r", "C", "##A", "##R"]


def test_save_and_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.is_fast
    for text in ["person. bicycle. car", "Traffic-lights, hair driers", "жук CAFÉ 12"]:
        a = tok(text, return_offsets_mapping=True)
        b = loaded(text, return_offsets_mapping=True)
        assert a["input_ids"] == b["input_ids"]
        assert a["offset_mapping"] == b["offset_mapping"]
    assert loaded("a b").char_to_token(2) == 2


def test_load_tokenizer_missing_dir_names_path_and_remedy(tmp_path):
    missing = tmp_path / "bert-base-uncased"
    with pytest.raises(FileNotFoundError, match="bert-base-uncased") as info:
        load_tokenizer(missing)
    assert str(missing) in str(info.value) and "download" in str(info.value)


def test_tokenize_pads_to_max_len(tok):
    ids, mask = tokenize(tok, ["person. car", "bicycle"])
    assert ids.shape == mask.shape == (2, 256)
    assert ids[0, :5].tolist() == tok("person. car")["input_ids"]  # [CLS] person . car [SEP]
    assert mask.sum(1).tolist() == [5, 3]
    assert (ids[0, 5:] == 0).all() and (mask[0, 5:] == 0).all()


def test_tokenize_rejects_over_long_caption(tok):
    fits = " ".join(["car"] * 254)  # 254 words + [CLS] + [SEP] = 256 tokens
    ids, mask = tokenize(tok, [fits])
    assert mask.sum().item() == 256
    with pytest.raises(ValueError, match=r"caption 1 has 257 tokens.*max_len=256"):
        tokenize(tok, ["person", fits + " car"])
    with pytest.raises(ValueError, match="no captions"):
        tokenize(tok, [])
    with pytest.raises(TypeError, match="list of captions"):
        tokenize(tok, "person")


def test_backbone_shapes_and_masking(tok):
    torch.manual_seed(0)
    backbone = LanguageBackbone.from_config(tiny_config(len(tok))).eval()
    ids, mask = tokenize(tok, ["person. bicycle. car", "hair drier"])
    with torch.no_grad():
        out = backbone(ids, mask)
    assert isinstance(out, TextFeatures)
    assert out.hidden.shape == out.embedded.shape == (2, 256, 32)
    assert torch.equal(out.input_ids, ids) and torch.equal(out.attention_mask, mask)
    assert torch.equal(out.embedded, out.hidden * mask[..., None])
    assert out.hidden[0, 7:].abs().sum() > 0  # hidden keeps pad positions, embedded zeroes them
    assert out.embedded[0, 7:].abs().sum() == 0
    # The attention mask really hides the pads: valid positions equal an unpadded forward pass.
    n = int(mask[1].sum())
    with torch.no_grad():
        ref = backbone.model(input_ids=ids[1:, :n]).last_hidden_state
    torch.testing.assert_close(out.hidden[1:, :n], ref, atol=1e-5, rtol=1e-5)


def test_backbone_state_dict_names_have_no_pooler(tok):
    backbone = LanguageBackbone.from_config(tiny_config(len(tok)))
    names = list(backbone.state_dict())
    assert "model.embeddings.word_embeddings.weight" in names
    assert "model.encoder.layer.1.attention.self.query.weight" in names
    assert not any("pooler" in n for n in names)
    with pytest.raises(ValueError, match="add_pooling_layer=False"):
        LanguageBackbone(BertModel(tiny_config(len(tok))))


def test_backbone_from_pretrained_round_trip(tok, tmp_path):
    backbone = LanguageBackbone.from_config(tiny_config(len(tok)))
    backbone.model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = LanguageBackbone.from_pretrained(tmp_path)
    assert loaded.tokenizer.get_vocab() == tok.get_vocab()
    ref, got = backbone.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    feats = loaded.eval().encode(["person. car"])
    assert feats.hidden.shape == (1, 256, 32)


def test_backbone_from_pretrained_missing_weights(tok, tmp_path):
    tok.save_pretrained(tmp_path)  # a tokenizer but no config.json / weights
    with pytest.raises(FileNotFoundError, match="config.json") as info:
        LanguageBackbone.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value) and "huggingface-cli download bert-base-uncased" in str(
        info.value
    )


def test_bert_base_config_parameter_count():
    cfg = bert_base_config()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (
        768,
        12,
        12,
        3072,
    )
    with torch.device("meta"):
        model = BertModel(cfg, add_pooling_layer=False)
    d, f, v = 768, 3072, 30522
    embeddings = (v + 512 + 2) * d + 2 * d
    layer = 4 * (d * d + d) + 2 * d + (d * f + f) + (f * d + d) + 2 * d
    assert sum(p.numel() for p in model.parameters()) == embeddings + 12 * layer  # 108,891,648
