"""Per-image sampled training captions (bench.data.od_captions): the official od_to_grounding rule."""

from __future__ import annotations

import pytest

from bench.data.od_captions import CaptionSampler, TrainPrompt
from bench.util.errors import UserError


def _words(text: str) -> int:
    """A stand-in tokenizer: one token per word and one for the '.' (what BERT gives these names)."""
    return len(text.replace(".", " .").split())


def _sampler(n: int = 50, budget: int = 254, seed: int = 0, **settings) -> CaptionSampler:
    entries = {k + 1: ("", f"thing {k}", "") for k in range(n)}  # 3 tokens each with ". "
    return CaptionSampler(entries, _words, budget, ". ", TrainPrompt(**settings), seed)


def _names(caption: str) -> list[str]:
    return caption.split(". ")


def test_a_caption_holds_the_positives_and_distinct_negatives_at_their_spans():
    s = _sampler(all_negatives_prob=1.0, negatives=10)
    drawn = s.sample([3, 3, 7])
    assert sorted(drawn.category_ids) == sorted(set(drawn.category_ids)) and {3, 7} <= set(drawn.category_ids)
    assert len(drawn.category_ids) == 12 and drawn.dropped == []  # all 10 negatives (probability 1)
    for cid, (a, b) in drawn.span_of().items():
        assert drawn.caption[a:b] == f"thing {cid - 1}"
    assert _names(drawn.caption) == [f"thing {c - 1}" for c in drawn.category_ids]


def test_the_token_budget_cuts_negatives_first_and_then_positives():
    s = _sampler(n=50, budget=30, all_negatives_prob=1.0, negatives=85)  # 10 entries of 3 tokens
    drawn = s.sample([1, 2])
    assert {1, 2} <= set(drawn.category_ids) and _words(drawn.caption + ". ") < 30  # the budget left stays > 0
    assert len(drawn.category_ids) == 9  # 2 positives + 7 negatives: an 8th would leave 0 tokens
    crowded = s.sample(range(1, 13))  # 12 positives of 3 tokens: 10 fit
    assert len(crowded.category_ids) == 10 and len(crowded.dropped) == 2
    assert set(crowded.category_ids) | set(crowded.dropped) == set(range(1, 13))


def test_the_number_of_negatives_is_all_or_uniform_and_never_more_than_the_classes_left():
    some = _sampler(all_negatives_prob=0.0, negatives=5)
    counts = {len(some.sample([1]).category_ids) - 1 for _ in range(200)}
    assert counts == {1, 2, 3, 4, 5}
    assert len(_sampler(n=4, all_negatives_prob=1.0).sample([1]).category_ids) == 4  # 3 others exist
    assert _sampler(negatives=0).sample([2]).category_ids == [2]


def test_one_seed_gives_one_stream_and_another_seed_another():
    a, b, c = _sampler(seed=3), _sampler(seed=3), _sampler(seed=30)
    first = [a.sample([1, 2]).caption for _ in range(5)]
    assert first == [b.sample([1, 2]).caption for _ in range(5)]
    assert first != [c.sample([1, 2]).caption for _ in range(5)]
    assert a.record()["drawn"]["captions"] == 5 and a.record()["token_budget"] == 254


def test_a_class_outside_the_vocabulary_is_refused():
    with pytest.raises(UserError, match="not in the training vocabulary"):
        _sampler(n=5).sample([9])
