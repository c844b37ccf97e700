"""The rule-based noun-phrase chunker on hand-written captions: exact phrase strings and character spans."""

import pytest

from bench.studies.selftrain.phrases import extract_rule, get_extractor
from bench.util.errors import UserError

CASES = [
    ("a small red star left of a blue ring and two hearts",
     [("a small red star", 0, 16), ("a blue ring", 25, 36), ("two hearts", 41, 51)]),
    ("a picture of a small red star left of a blue ring",
     [("a small red star", 13, 29), ("a blue ring", 38, 49)]),
    ("we see the yellow circle next to a black heart.",
     [("the yellow circle", 7, 24), ("a black heart", 33, 46)]),
    ("an image with three green crosses above a purple square",
     [("three green crosses", 14, 33), ("a purple square", 40, 55)]),
    ("A man in a red shirt is riding a horse on the beach",
     [("A man", 0, 5), ("a red shirt", 9, 20), ("a horse", 31, 38), ("the beach", 42, 51)]),
    ("two dogs, a cat and the big brown horse",
     [("two dogs", 0, 8), ("a cat", 10, 15), ("the big brown horse", 20, 39)]),
    ("there is a ring to the left of the large square",
     [("a ring", 9, 15), ("the large square", 31, 47)]),
    # "left" without "of" is an adjective; "in front of" is one relation
    ("the left hand of a woman in front of a car",
     [("the left hand", 0, 13), ("a woman", 17, 24), ("a car", 37, 42)]),
    ("a tiny white hexagon below the orange crescent",
     [("a tiny white hexagon", 0, 20), ("the orange crescent", 27, 46)]),
    ("Two hourglasses, next to a  large   black arrow!",
     [("Two hourglasses", 0, 15), ("a  large   black arrow", 25, 47)]),
]


@pytest.mark.parametrize("caption, expected", CASES)
def test_rule_chunker_exact_phrases_and_spans(caption, expected):
    got = [(p.text, p.start, p.end) for p in extract_rule(caption)]
    assert got == expected
    for text, s, e in got:
        assert caption[s:e] == text


@pytest.mark.parametrize("caption", ["it is there.", "and of the", "...", "we see this"])
def test_captions_without_objects_give_no_phrases(caption):
    assert extract_rule(caption) == []


def test_synthetic_world_captions_match_their_ground_truth_phrases():
    """The synthetic grounding captions' own phrase spans are recovered exactly by the chunker."""
    import numpy as np

    from bench.synthetic import specs
    from bench.synthetic.captions import grounding_caption
    from bench.synthetic.scenes import sample_scene

    rng = np.random.default_rng(0)
    n = 0
    for _ in range(40):
        scene = sample_scene(specs.GROUNDING_PLAN, rng)
        caption, phrases = grounding_caption(scene.objects, rng)
        if not phrases:
            continue
        assert [(p.start, p.end) for p in extract_rule(caption)] == [p.span for p in phrases], caption
        n += 1
    assert n >= 30


def test_extractor_names():
    assert get_extractor("rule").name == "rule"
    with pytest.raises(UserError, match="rule"):
        get_extractor("nltk")


def test_spacy_extractor_missing_is_a_clear_error_or_works():
    try:
        import spacy  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="--extractor rule"):
            get_extractor("spacy")
        return
    try:
        ext = get_extractor("spacy")
    except UserError as e:  # spaCy without an English pipeline
        assert "pipeline" in str(e)
        return
    caption = "a red star left of a blue ring"
    phrases = ext(caption)
    assert ext.name.startswith("spacy:")
    assert all(caption[p.start:p.end] == p.text for p in phrases)
    assert [p.text for p in phrases][:1] == ["a red star"]
