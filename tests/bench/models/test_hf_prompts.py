"""Class prompts per family: captions that fit the model's text length and the task's chunk size, token maps."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import BertTokenizerFast

from bench.models.hf.prompts import caption_chunks, make_caption, query_chunks, token_map
from bench.testing.hf import write_bert_vocab

NAMES = ["red circle", "blue square", "green triangle", "yellow star", "ring"]


def fake_task(chunk_size=None):
    return SimpleNamespace(name="t", format="coco", chunk_size=chunk_size,
                           prompt_names=lambda _set, names: (names, [""] * len(names), [""] * len(names)))


def fake_dataset():
    return SimpleNamespace(categories=[{"id": 10 + i, "name": n} for i, n in enumerate(NAMES)])


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return BertTokenizerFast(vocab=str(write_bert_vocab(tmp_path_factory.mktemp("vocab"))))


def test_caption_spans_cover_the_names():
    chunk = make_caption(["red circle", "ring"], [(0, 10), (0, 4)])
    assert chunk.caption == "red circle. ring."
    assert [chunk.caption[s:e] for s, e in chunk.spans] == ["red circle", "ring"]


def test_captions_end_where_the_next_class_would_not_fit(tokenizer):
    # "red circle. blue square." is [CLS] red circle . blue square . [SEP] = 8 tokens
    chunks = caption_chunks(fake_task(), fake_dataset(), "plain", tokenizer, max_tokens=8)
    assert [c.caption for c, _ in chunks] == ["red circle. blue square.", "green triangle. yellow star.", "ring."]
    assert [ids for _, ids in chunks] == [[10, 11], [12, 13], [14]]
    assert all(len(tokenizer(c.caption)["input_ids"]) <= 8 for c, _ in chunks)


def test_captions_follow_the_task_chunk_size(tokenizer):
    chunks = caption_chunks(fake_task(chunk_size=3), fake_dataset(), "plain", tokenizer, max_tokens=256)
    assert [ids for _, ids in chunks] == [[10, 11, 12], [13, 14]]
    assert [ids for _, ids in query_chunks(fake_task(chunk_size=3), fake_dataset(), "plain")] == [[10, 11, 12], [13, 14]]
    assert [c.entries for c, _ in query_chunks(fake_task(), fake_dataset(), "plain")] == [tuple(NAMES)]


def test_a_class_longer_than_the_text_limit_is_an_error(tokenizer):
    from bench.util.errors import UserError

    with pytest.raises(UserError, match="'red circle' alone takes more than the model's 3 text tokens"):
        caption_chunks(fake_task(), fake_dataset(), "plain", tokenizer, max_tokens=3)


def test_token_map_marks_the_tokens_of_each_phrase(tokenizer):
    caption = "red circle. ring."
    tok = tokenizer(caption, return_offsets_mapping=True)
    tmap = token_map(tok["offset_mapping"], [[(0, 10)], [(12, 16)]], num_tokens=8)
    words = tokenizer.convert_ids_to_tokens(tok["input_ids"])
    assert [words[t] for t in tmap[0].nonzero().flatten().tolist()] == ["red", "circle"]
    assert [words[t] for t in tmap[1].nonzero().flatten().tolist()] == ["ring"]
