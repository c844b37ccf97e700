"""A text-encoder folder loads only as a complete BERT: anything else is refused by name, never run at random."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

from glip.language import LanguageBackbone, build_wordpiece_tokenizer

BERT_VOCAB = 30522  # bert-base-uncased's


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A tiny but complete BERT folder, saved with its pooler as a bert-base-uncased folder is."""
    d = tmp_path_factory.mktemp("bert")
    tok = build_wordpiece_tokenizer(["red square", "blue circle"])
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=260)).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_a_complete_bert_with_its_pooler_loads(bert_dir):
    assert LanguageBackbone.from_pretrained(bert_dir).hidden_size == 16


def test_a_distilbert_folder_with_berts_vocab_size_is_refused_by_name(bert_dir, tmp_path):
    d = tmp_path / "distil"
    DistilBertModel(DistilBertConfig(vocab_size=BERT_VOCAB, dim=8, n_layers=1, n_heads=2, hidden_dim=16)).save_pretrained(d)
    build_wordpiece_tokenizer(["cat"]).save_pretrained(d)
    with pytest.raises(ValueError, match=rf"text encoder {d} is a 'distilbert' model .* not BERT"):
        LanguageBackbone.from_pretrained(d)


def test_a_bert_with_weights_missing_is_refused(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "part")
    state = load_file(d / "model.safetensors")
    save_file({k: v for k, v in state.items() if "encoder.layer.0.output" not in k}, d / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"{d} does not hold a complete BERT: 4 weights missing .*encoder.layer.0.output"):
        LanguageBackbone.from_pretrained(d)


def test_stray_weights_are_refused(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "stray")
    state = load_file(d / "model.safetensors")
    state["encoder.layer.7.output.dense.weight"] = state["pooler.dense.weight"].clone()
    save_file(state, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"1 unexpected \['encoder.layer.7.output.dense.weight'\]"):
        LanguageBackbone.from_pretrained(d)


def test_an_invalid_config_json_is_refused_by_name(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "cfg")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=rf"text encoder {d}: config.json is not valid JSON"):
        LanguageBackbone.from_pretrained(d)


def test_a_truncated_safetensors_is_refused_by_name(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "cut")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"text encoder {d}: its weights cannot be loaded \(SafetensorError"):
        LanguageBackbone.from_pretrained(d)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_pickle_payload_bin_is_refused_and_not_run(bert_dir, tmp_path):
    d = _copy(bert_dir, tmp_path / "pickle")
    marker = tmp_path / "RAN"
    state = dict(load_file(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump({**state, "payload": _Payload(marker)}, f)
    with pytest.raises(ValueError, match=rf"text encoder {d}: pytorch_model.bin holds more than tensors"):
        LanguageBackbone.from_pretrained(d)
    assert not marker.exists()


def test_the_bench_loader_turns_it_into_a_user_error(tmp_path):
    """glip-t's --text-encoder goes through build_model: a refused folder is a UserError (rc 2)."""
    from bench.models.glip_adapter import build_model, model_config
    from bench.util.errors import UserError

    d = tmp_path / "distil"
    DistilBertModel(DistilBertConfig(vocab_size=BERT_VOCAB, dim=8, n_layers=1, n_heads=2, hidden_dim=16)).save_pretrained(d)
    build_wordpiece_tokenizer(["cat"]).save_pretrained(d)
    with pytest.raises(UserError, match="'distilbert' model"):
        build_model(model_config("glip-t", {}), None, d)
