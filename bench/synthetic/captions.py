"""Text of the synthetic world: grounding captions with phrase spans, and detection prompts.

Grounding captions mention some of a scene's objects with attributes and relations, Flickr30K style:
"a picture of a small red star left of a blue ring and two hearts". Each phrase covers its whole noun
phrase (article or numeral included, as Flickr30K Entities phrases do) and refers to every object in
the scene that matches its description, so the ground truth is never ambiguous.

Detection prompts follow GLIP's detection-to-grounding conversion (official
maskrcnn_benchmark/data/datasets/od_to_grounding.py, "O365
detection -> grounding"): every positive class name plus sampled negatives, shuffled, joined with ". ",
each span covering the name only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.synthetic.concepts import ARTICLES, CONNECTIVE, NUMERALS, OPENERS, PLURALS
from bench.synthetic.scenes import SceneObject

SEPARATOR = ". "  # DATASETS.SEPARATION_TOKENS of every GLIP pretrain config (configs/pretrain/*.yaml)
MAX_NEGATIVES = 85  # DATASETS.RANDOM_SAMPLE_NEG (configs/pretrain/*.yaml)
# GLIP draws at most 85 negatives from Objects365's 365 names (23%); the synthetic world has 56 colour-shape
# names, so it caps at 16: a prompt of every other name (~170 tokens) made deep-fusion pretraining steps ~25%
# slower and learned no faster (README "The synthetic world")
SYNTH_MAX_NEGATIVES = 16


@dataclass(frozen=True)
class Phrase:
    """A phrase of a caption: its character span [start, end) and the scene objects it refers to."""

    span: tuple[int, int]
    objects: tuple[int, ...]  # indices into the scene's object list
    text: str


def _describe(obj: SceneObject, use_size: bool, use_colour: bool) -> Callable[[SceneObject], bool]:
    def match(o: SceneObject) -> bool:
        return (
            o.shape == obj.shape
            and (not use_size or o.size == obj.size)
            and (not use_colour or o.colour == obj.colour)
        )

    return match


def grounding_caption(
    objects: Sequence[SceneObject], rng: np.random.Generator, max_phrases: int = 3
) -> tuple[str, list[Phrase]]:
    """A caption mentioning 1..max_phrases object groups of the scene, with exact phrase spans.

    Returns ("", []) when the scene has no object. Phrases never share an object.
    """
    if not objects:
        return "", []
    want = int(rng.integers(1, max_phrases + 1))
    groups: list[tuple[tuple[int, ...], list[str]]] = []  # (matched object indices, phrase words)
    used: set[int] = set()
    for i in rng.permutation(len(objects)):
        if len(groups) == want:
            break
        if int(i) in used:
            continue
        obj = objects[int(i)]
        use_size = bool(rng.random() < 0.4) and obj.size in ("small", "large")
        use_colour = bool(rng.random() < 0.7)
        match = _describe(obj, use_size, use_colour)
        matched = tuple(j for j, o in enumerate(objects) if match(o))
        if len(matched) > 3 or used.intersection(matched):
            continue
        attrs = ([obj.size] if use_size else []) + ([obj.colour] if use_colour else [])
        if len(matched) == 1:
            article = ARTICLES[int(rng.integers(len(ARTICLES)))]
            nxt = (attrs or [obj.shape])[0]
            if article == "a" and nxt[0] in "aeiou":
                article = "an"
            words = [article, *attrs, obj.shape]
        else:
            words = [NUMERALS[len(matched)], *attrs, PLURALS[obj.shape]]
        groups.append((matched, words))
        used.update(matched)

    caption = OPENERS[int(rng.integers(len(OPENERS)))]
    phrases: list[Phrase] = []
    for k, (matched, words) in enumerate(groups):
        if k > 0:
            prev = groups[k - 1][0]
            if len(prev) == 1 and len(matched) == 1 and rng.random() < 0.7:
                caption += " " + _relation(objects[prev[0]], objects[matched[0]], rng) + " "
            else:
                caption += f" {CONNECTIVE} "
        text = " ".join(words)
        start = len(caption)
        caption += text
        phrases.append(Phrase((start, start + len(text)), matched, text))
    return caption, phrases


def _relation(a: SceneObject, b: SceneObject, rng: np.random.Generator) -> str:
    """Where a lies relative to b, in words (image coordinates: y grows downwards)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = ax - bx, ay - by
    if dx * dx + dy * dy < 45 * 45 and rng.random() < 0.2:
        return "next to"
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def join_names(names: Sequence[str], separator: str = SEPARATOR) -> tuple[str, list[tuple[int, int]]]:
    """Caption 'n1. n2. n3' (no trailing separator) and each name's [start, end) span."""
    caption, spans = "", []
    for k, name in enumerate(names):
        if k:
            caption += separator
        spans.append((len(caption), len(caption) + len(name)))
        caption += name
    return caption, spans


def detection_prompt(
    present: Sequence[str], vocabulary: Sequence[str], rng: np.random.Generator, max_negatives: int = MAX_NEGATIVES
) -> tuple[str, dict[str, tuple[int, int]]]:
    """A detection-as-grounding prompt: the present class names plus sampled negatives, shuffled.

    GLIP's rule (official od_to_grounding.py, convert_object_detection_to_grounding_optimized_for_od): with
    probability 0.5 all negatives (up to max_negatives) are
    used, otherwise a uniform number in 1..N. Returns the caption and each used name's span.
    """
    positives = sorted(set(present))
    pool = [n for n in vocabulary if n not in positives]
    n_max = min(len(pool), max_negatives)
    if n_max == 0:
        k = 0
    elif rng.random() < 0.5:
        k = n_max
    else:
        k = int(rng.integers(1, n_max + 1))
    negatives = [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)] if k else []
    names = positives + negatives
    names = [names[int(i)] for i in rng.permutation(len(names))]
    caption, spans = join_names(names)
    return caption, dict(zip(names, spans))
