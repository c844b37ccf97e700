"""Class-anchored prompt offsets: rows follow class names and words, never positions."""

from __future__ import annotations

import pytest
import torch

from bench.data.prompt_anchor import NO_ROW, ClassAnchor
from glip.config import get_preset
from glip.language import build_wordpiece_tokenizer
from glip.prompts import build_caption, build_prompt_chunks, positive_map

NAMES = {1: "green square", 2: "yellow circle", 3: "red circle", 4: "blue triangle"}


@pytest.fixture(scope="module")
def tokenizer():
    return build_wordpiece_tokenizer(get_preset("glip-tiny").vocab_words)


def _eval_chunks(tokenizer, chunk_size=2):
    """The evaluated prompt in chunks: (token ids, positive map, category ids) per chunk."""
    ids = sorted(NAMES)
    chunks = build_prompt_chunks(tokenizer, [NAMES[i] for i in ids], separator=". ", chunk_size=chunk_size)
    return [(tokenizer(ch.caption)["input_ids"], ch.positive_map, [ids[i] for i in ch.phrase_indices])
            for ch in chunks]


def _caption(tokenizer, category_ids, prefixes=None):
    caption, spans = build_caption([NAMES[c] for c in category_ids], ". ", prefixes)
    return tokenizer(caption)["input_ids"], positive_map(tokenizer, caption, [[s] for s in spans], 32), caption


def _rows_by_token(anchor, ids, pmap, cats):
    """(class id or None, k-th token of it, token id) -> row, read off one caption."""
    rows = anchor.rows(ids, pmap, cats, 32)
    assert (rows[len(ids):] == NO_ROW).all() and (rows[: len(ids)] >= 0).all()
    out = {}
    for p, cid in enumerate(cats):
        for k, t in enumerate(pmap[p, : len(ids)].nonzero().flatten().tolist()):
            out[(cid, k, ids[t])] = int(rows[t])
    in_class = pmap[:, : len(ids)].sum(0) > 0
    for t in range(len(ids)):
        if not in_class[t]:
            out[(None, 0, ids[t])] = int(rows[t])
    return out


def test_a_class_token_has_one_row_in_every_caption_and_the_rows_tile_the_table(tokenizer):
    """The same class's k-th token and the same word get the same row in the two evaluated chunks and in
    training captions that put the classes at other positions; different tokens never share a row, and the
    rows used are exactly 0..size-1."""
    chunks = _eval_chunks(tokenizer)
    anchor = ClassAnchor.build(chunks)
    seen: dict[tuple, int] = {}
    captions = [*chunks, *[_caption(tokenizer, order)[:2] + (order,) for order in ([3, 1], [4, 2, 1], [2])]]
    for ids, pmap, cats in captions:
        for key, row in _rows_by_token(anchor, ids, pmap, cats).items():
            assert seen.setdefault(key, row) == row, key  # one row per (class, k) or word, wherever it stands
    assert sorted(seen.values()) == list(range(anchor.size))  # a bijection onto the table's rows
    assert {c for c, _, _ in seen if c is not None} == set(NAMES)
    # the class rows come first, by class id, each name's tokens consecutive
    assert [anchor.class_rows[c] for c in sorted(NAMES)] == [0, *torch.tensor(
        [anchor.class_tokens[c] for c in sorted(NAMES)]).cumsum(0)[:-1].tolist()]
    assert anchor.record()["rows"] == anchor.size and anchor.record()["classes"] == 4


def test_a_position_changes_its_row_when_the_caption_changes(tokenizer):
    """Token 1 is "red" in one caption and "green" in another: a per-position table would give both the same
    offset; the anchor gives each its class's row."""
    anchor = ClassAnchor.build(_eval_chunks(tokenizer))
    first = anchor.rows(*_caption(tokenizer, [3, 1])[:2], [3, 1], 32)
    second = anchor.rows(*_caption(tokenizer, [1, 3])[:2], [1, 3], 32)
    assert int(first[1]) == anchor.class_rows[3] and int(second[1]) == anchor.class_rows[1]


def test_what_the_layout_does_not_hold_is_named(tokenizer):
    anchor = ClassAnchor.build(_eval_chunks(tokenizer))
    ids, pmap, _ = _caption(tokenizer, [1, 2])
    with pytest.raises(ValueError, match="class 9 is not in"):
        anchor.rows(ids, pmap, [1, 9], 32)
    ids, pmap, _ = _caption(tokenizer, [1, 2], prefixes=["red ", ""])  # "red" outside a class name: a new word
    with pytest.raises(ValueError, match="outside every class name"):
        anchor.rows(ids, pmap, [1, 2], 32)
    ids, pmap, _ = _caption(tokenizer, [3])
    short = pmap.clone()
    short[0, int(pmap[0].nonzero()[-1])] = 0  # "red circle" marked as one token only
    with pytest.raises(ValueError, match=f"class 3 has 1 tokens here and {anchor.class_tokens[3]}"):
        anchor.rows(ids, short, [3], 32)
    with pytest.raises(ValueError, match="longer than"):
        anchor.rows(ids, pmap, [3], 2)
