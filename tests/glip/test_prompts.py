"""Captions, spans, positive maps and chunking (official maskrcnn_benchmark/engine/inference.py,
create_queries_and_maps)."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glip.language import build_wordpiece_tokenizer
from glip.prompts import (
    PromptChunk,
    build_caption,
    build_prompt_chunks,
    chunk_phrases,
    clean_name,
    positive_map,
)

WORDS = [
    "bow",
    "person",
    "bicycle",
    "car",
    "traffic",
    "light",
    "hair",
    "drier",
    "fish",
    "penguin",
    "which",
    "is",
]
TOK = build_wordpiece_tokenizer(WORDS)


def n_tokens(caption: str) -> int:
    return len(TOK(caption, verbose=False)["input_ids"])


def reference_rows(caption: str, spans: list[tuple[int, int]]) -> list[set[int]]:
    """Brute force: the non-special tokens whose character offsets overlap each span."""
    enc = TOK(caption, return_offsets_mapping=True, return_special_tokens_mask=True)
    offsets, special = enc["offset_mapping"], enc["special_tokens_mask"]
    return [
        {t for t, (a, b) in enumerate(offsets) if not special[t] and a < end and b > beg}
        for beg, end in spans
    ]


# --- build_caption / clean_name ---------------------------------------------------------------


def test_build_caption_coco_style():
    caption, spans = build_caption(["person", "bicycle", "car"])
    assert caption == "person. bicycle. car"  # no trailing separator
    assert spans == [(0, 6), (8, 15), (17, 20)]


def test_build_caption_other_separator_and_single_name():
    assert build_caption(["a b", "c"], separator=" . ") == ("a b . c", [(0, 3), (6, 7)])
    assert build_caption(["fish"]) == ("fish", [(0, 4)])
    assert build_caption([]) == ("", [])


def test_build_caption_prefix_suffix_spans_cover_name_only():
    names = ["fish", "penguin", "car"]
    caption, spans = build_caption(
        names, prefixes=[" ", "", "a "], suffixes=["", " , which is black and white", ""]
    )
    assert caption == " fish. penguin , which is black and white. a car"
    assert spans == [(1, 5), (7, 14), (45, 48)]
    assert [caption[s:e] for s, e in spans] == names


def test_build_caption_rejects_bad_input():
    with pytest.raises(ValueError, match="prefixes has 1 entries but there are 2 names"):
        build_caption(["a", "b"], prefixes=["x"])
    with pytest.raises(ValueError, match=r"names\[1\] is empty"):
        build_caption(["a", ""])


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("bow_(weapon)", "bow "),  # official quirk: the trailing space stays
        ("traffic_light", "traffic light"),
        ("person", "person"),
        ("bait_(fishing)_line", "bait line"),  # "bait__line" -> "bait  line" -> one space
        ("a_(x)_b_(y)", "a "),  # the official regex is greedy: "(x)_b_(y)" goes at once
        ("a   b", "a  b"),  # one non-overlapping pass over double spaces, as re.sub does
    ],
)
def test_clean_name_matches_official(raw, cleaned):
    assert clean_name(raw) == cleaned


# --- positive_map ---------------------------------------------------------------------------------


def test_positive_map_hand_case():
    caption, spans = build_caption(["person", "traffic light", "bicycles"])
    # tokens: [CLS] person . traffic light . bicycle ##s [SEP]
    pm = positive_map(TOK, caption, [[s] for s in spans])
    assert pm.shape == (3, 256) and pm.dtype == torch.float32
    assert [torch.nonzero(row).flatten().tolist() for row in pm] == [[1], [3, 4], [6, 7]]


def test_positive_map_several_spans_per_phrase():
    caption = "person. car. person"
    pm = positive_map(TOK, caption, [[(0, 6), (13, 19)], [(8, 11)]], max_len=8)
    assert pm.tolist() == [[0, 1, 0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0]]


def test_positive_map_fallbacks_at_whitespace():
    # "person.  car": chars 7 and 8 are spaces; tokens [CLS]=0 person=1 .=2 car=3 [SEP]=4
    caption = "person.  car"
    assert TOK(caption).char_to_token(7) is None
    pm = positive_map(TOK, caption, [[(7, 12)], [(8, 12)], [(0, 8)], [(0, 9)]], max_len=6)
    rows = [torch.nonzero(r).flatten().tolist() for r in pm]
    assert rows[0] == [3]  # beg at a space: beg+1 is a space too, beg+2 is "c"
    assert rows[1] == [3]  # beg+1 is "c"
    assert rows[2] == [1, 2]  # end-1 at a space: end-2 is "."
    assert rows[3] == [1, 2]  # end-1 and end-2 spaces: end-3 is "."
    # The LVIS case: clean_name("bow_(weapon)") == "bow " ends with a space.
    caption, spans = build_caption([clean_name("bow_(weapon)"), "car"])
    assert caption == "bow . car" and spans[0] == (0, 4)
    assert torch.nonzero(positive_map(TOK, caption, [[s] for s in spans])[0]).flatten().tolist() == [1]


def test_positive_map_errors_name_the_phrase():
    with pytest.raises(ValueError, match=r"phrase 0 \('   '.*maps to no token"):
        positive_map(TOK, "a    b", [[(1, 4)]])  # three spaces: beyond the +1/+2 fallbacks
    caption, spans = build_caption(["person", "bicycle", "car"])  # car is token 5
    with pytest.raises(ValueError, match=r"phrase 2 \('car'\) ends at token 5, beyond max_len=5"):
        positive_map(TOK, caption, [[s] for s in spans], max_len=5)
    with pytest.raises(ValueError, match="outside the caption"):
        positive_map(TOK, caption, [[(18, 30)]])


# --- hypothesis: random class lists ---------------------------------------------------------------

LETTERS = st.characters(categories=["Lu", "Ll", "Lo", "Nd"])
WORD = st.one_of(
    st.sampled_from(WORDS),
    st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), min_size=1, max_size=6),
    st.text(alphabet=LETTERS, min_size=1, max_size=6),
)
NAME = st.builds(
    lambda words, joins: "".join(w + j for w, j in zip(words, joins + [""])),
    st.lists(WORD, min_size=1, max_size=3),
    st.lists(st.sampled_from([" ", "-", "_", " - "]), min_size=2, max_size=2),
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(names=st.lists(NAME, min_size=1, max_size=25))
def test_every_span_maps_to_exactly_its_tokens(names):
    caption, spans = build_caption(names)
    assert [caption[s:e] for s, e in spans] == names
    if n_tokens(caption) > 256:
        return  # covered by the chunking tests
    pm = positive_map(TOK, caption, [[s] for s in spans])
    assert pm.shape == (len(names), 256)
    assert set(pm.unique().tolist()) <= {0.0, 1.0}
    rows = [set(torch.nonzero(r).flatten().tolist()) for r in pm]
    assert all(rows) and min(min(r) for r in rows) >= 1  # [CLS] at 0: class tokens start at 1
    assert rows == reference_rows(caption, spans)


@FAST
@given(
    names=st.lists(NAME, min_size=1, max_size=40),
    max_len=st.integers(12, 64),
    chunk_size=st.one_of(st.none(), st.integers(1, 12)),
    prompted=st.booleans(),
)
def test_chunks_fit_and_keep_every_class_once(names, max_len, chunk_size, prompted):
    prefixes = [("a " if i % 3 == 0 else "") for i in range(len(names))] if prompted else None
    suffixes = [(" light" if i % 4 == 1 else "") for i in range(len(names))] if prompted else None
    singles = [
        n_tokens(
            build_caption(
                [names[i]], prefixes=prefixes and [prefixes[i]], suffixes=suffixes and [suffixes[i]]
            )[0]
        )
        for i in range(len(names))
    ]
    if max(singles) > max_len:
        with pytest.raises(ValueError, match="alone takes"):
            chunk_phrases(
                TOK, names, max_len=max_len, chunk_size=chunk_size, prefixes=prefixes, suffixes=suffixes
            )
        return
    chunks = build_prompt_chunks(
        TOK, names, chunk_size=chunk_size, prefixes=prefixes, suffixes=suffixes, max_len=max_len
    )
    assert all(isinstance(c, PromptChunk) for c in chunks)
    merged = [i for c in chunks for i in c.phrase_indices]
    assert merged == list(range(len(names)))  # every class exactly once, in order
    for c in chunks:
        assert n_tokens(c.caption) <= max_len  # [CLS] and [SEP] included
        if chunk_size is not None:  # caps the count and never crosses an official block boundary
            assert len(c.phrase_indices) <= chunk_size
            assert len({i // chunk_size for i in c.phrase_indices}) == 1
        assert c.positive_map.shape == (len(c.phrase_indices), max_len)
        assert (c.positive_map.sum(1) > 0).all()
        sub = [names[i] for i in c.phrase_indices]
        assert [c.caption[s:e] for [(s, e)] in c.spans] == sub
        rows = [set(torch.nonzero(r).flatten().tolist()) for r in c.positive_map]
        assert rows == reference_rows(c.caption, [s for [s] in c.spans])
    # Greedy is maximal: a chunk ends early only where the next class would not fit.
    for c, nxt in zip(chunks, chunks[1:]):
        block_end = chunk_size is not None and nxt.phrase_indices[0] % chunk_size == 0
        if not block_end:
            idx = [*c.phrase_indices, nxt.phrase_indices[0]]
            cap = build_caption(
                [names[i] for i in idx],
                prefixes=[prefixes[i] for i in idx] if prompted else None,
                suffixes=[suffixes[i] for i in idx] if prompted else None,
            )[0]
            assert n_tokens(cap) > max_len


def test_long_vocabulary_chunks_at_256():
    rng = random.Random(0)
    names = [
        " ".join(rng.choice(WORDS + ["zebra", "kite", "umbrella"]) for _ in range(rng.randint(1, 3)))
        + f" {i}"
        for i in range(300)
    ]
    assert n_tokens(build_caption(names)[0]) > 3 * 256
    chunks = build_prompt_chunks(TOK, names)
    assert len(chunks) >= 4
    assert [i for c in chunks for i in c.phrase_indices] == list(range(300))
    assert all(n_tokens(c.caption) <= 256 and c.positive_map.shape[1] == 256 for c in chunks)
    # Blocks of 40 of these names overflow 256 tokens: each official block is split further.
    split = chunk_phrases(TOK, names, chunk_size=40)
    assert len(split) > 300 // 40 + 1
    assert [i for c in split for i in c] == list(range(300))
    assert all(len({i // 40 for i in c}) == 1 for c in split)
    assert all(n_tokens(build_caption([names[i] for i in c])[0]) <= 256 for c in split)
    # LVIS-style: with short names the chunks are exactly the official consecutive blocks of 40.
    short = [f"{rng.choice(WORDS)} {i}" for i in range(1203)]
    lvis = chunk_phrases(TOK, short, chunk_size=40)
    assert lvis == [list(range(s, min(s + 40, 1203))) for s in range(0, 1203, 40)]
    assert len(lvis) == 31  # as the official LVIS evaluation (TEST.CHUNKED_EVALUATION 40)


@pytest.mark.parametrize("chunk_size", [None, 5])
def test_chunk_boundary_is_exact(chunk_size):
    # k one-token names take 2k + 1 tokens: [CLS] car . car ... car [SEP]
    names = ["car"] * 5
    assert n_tokens(build_caption(names)[0]) == 11
    assert chunk_phrases(TOK, names, max_len=11, chunk_size=chunk_size) == [[0, 1, 2, 3, 4]]
    assert chunk_phrases(TOK, names, max_len=10, chunk_size=chunk_size) == [[0, 1, 2, 3], [4]]
    assert chunk_phrases(TOK, names, max_len=3, chunk_size=chunk_size) == [[i] for i in range(5)]
    with pytest.raises(ValueError, match=r"class 0 \('car'.*alone takes 3 tokens"):
        chunk_phrases(TOK, names, max_len=2, chunk_size=chunk_size)


def test_chunk_phrases_rejects_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_phrases(TOK, ["a", "b"], chunk_size=0)
    assert chunk_phrases(TOK, []) == []
