"""Noun-phrase extraction from captions, offline: a rule-based chunker and an optional spaCy parser.

GLIP's self-training grounds the noun phrases of web captions with a teacher (the paper used an NLP
parser). Phrases here follow the Flickr30K Entities habit the synthetic world also follows: a phrase
covers its whole noun group, article or numeral included ("a small red star", "two hearts").

The rule chunker (`extract_rule`) is meant for simple descriptive captions: it splits a caption at
punctuation, prepositions, conjunctions, verbs it knows and relation words ("left of", "next to",
"in front of"), drops pronouns and framing words ("a picture of", "there is", "we see"), and keeps
each remaining run of words as one phrase. It does not know parts of speech, so a verb it has never
seen stays inside a phrase; use spaCy for free-form text.

The spaCy extractor uses a locally installed pipeline's `noun_chunks`; nothing is ever downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.util.errors import UserError

EXTRACTORS = ("rule", "spacy")


@dataclass(frozen=True)
class NounPhrase:
    """A phrase of a caption: caption[start:end] == text."""

    text: str
    start: int
    end: int


# Words that end a phrase and belong to none (prepositions, conjunctions, auxiliaries, common verbs).
PREPOSITIONS = frozenset("""
    of in on at with without near by under over above below beneath underneath behind beside besides
    between among amongst into onto from to toward towards for inside outside around through across
    along against beyond upon within via atop about after before during like than
""".split())
CONJUNCTIONS = frozenset("and or but nor while as so yet whereas".split())
VERBS = frozenset("""
    is are was were be been being am has have had do does did can could will would shall should may
    might must sits sit sat sitting stands stand stood standing holds hold holding held wears wear
    wearing rides ride riding plays play playing walks walk walking runs run running looks look looking
    lies lie lying lay eats eat eating shows show showing contains contain containing appears appear
    appearing seems seem touches touch touching faces face facing points point pointing goes go going
    sees see seeing watches watch watching waits wait waiting jumps jump jumping flies fly flying
    carries carry carrying uses use using leans lean leaning hangs hang hanging rests rest resting
""".split())
# Words that refer to no object of the picture (a phrase made only of these is dropped).
PRONOUNS = frozenset("""
    i we you he she it they me us him her them this that these those there here who whom which what
    something someone anything nothing everything one
""".split())
DETERMINERS = frozenset("""
    a an the some any each every no another other both all many several few two three four five six
    seven eight nine ten its his her their our my your
""".split())
# Leading framing ("a picture of ...", "an image with ...", "a photo showing ..."): the framing noun is
# not an object in the image.
FRAMING_NOUNS = frozenset("picture image photo photograph view scene shot snapshot".split())
# Multi-word relations; a relation word is a boundary only when the whole pattern matches, so "left"
# in "the left hand" stays an adjective while "left of" splits.
RELATIONS: tuple[tuple[str, ...], ...] = tuple(
    tuple(r.split()) for r in sorted(
        ["left of", "right of", "next to", "close to", "in front of", "on top of", "to the left of",
         "to the right of", "on the left of", "on the right of", "in the middle of", "at the top of",
         "at the bottom of", "in between", "far from", "away from"],
        key=lambda r: -len(r.split()),  # longest first
    )
)
BOUNDARY_PUNCTUATION = ".,;:!?()[]{}\"|/"

_WORD = re.compile(r"[A-Za-z0-9]+(?:['\-][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")


def _tokens(caption: str) -> list[tuple[str, int, int]]:
    """(lower-cased word or punctuation mark, start, end) in order."""
    return [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(caption)]


def _is_boundary_word(word: str) -> bool:
    return word in PREPOSITIONS or word in CONJUNCTIONS or word in VERBS or (
        len(word) == 1 and word in BOUNDARY_PUNCTUATION)


def extract_rule(caption: str) -> list[NounPhrase]:
    """Noun phrases of a simple caption with their character spans, in caption order.

    "a small red star left of a blue ring and two hearts"
        -> ["a small red star" (0, 16), "a blue ring" (25, 36), "two hearts" (41, 51)]
    """
    toks = _tokens(caption)
    words = [t[0] for t in toks]
    groups: list[list[int]] = []  # token indices of each candidate phrase
    current: list[int] = []
    i = 0
    while i < len(toks):
        rel = next((r for r in RELATIONS if tuple(words[i: i + len(r)]) == r), None)
        if rel is not None or _is_boundary_word(words[i]):
            if current:
                groups.append(current)
            current = []
            i += len(rel) if rel is not None else 1
            continue
        current.append(i)
        i += 1
    if current:
        groups.append(current)

    phrases = []
    for g in groups:
        g = _drop_framing(g, words, toks)
        content = [k for k in g if words[k] not in DETERMINERS and words[k] not in PRONOUNS]
        if not content or not any(ch.isalpha() for k in content for ch in words[k]):
            continue  # only articles, numerals or pronouns: names no object
        start, end = toks[g[0]][1], toks[g[-1]][2]
        phrases.append(NounPhrase(caption[start:end], start, end))
    return phrases


def _drop_framing(group: list[int], words: list[str], toks: list) -> list[int]:
    """Drop a leading "(we see | there is) (a picture | an image)" from a group: the framing is not an object.

    A group that is only framing ("a picture" before "of") disappears; "we see a dog" keeps "a dog".
    """
    k = 0
    while k < len(group) and words[group[k]] in PRONOUNS | {"see", "saw"}:
        k += 1
    rest = group[k:]
    body = [j for j in rest if words[j] not in DETERMINERS]
    if body and all(words[j] in FRAMING_NOUNS for j in body):
        return []
    return rest


class SpacyExtractor:
    """Noun chunks of a locally installed spaCy pipeline (never downloaded).

    model: a package name or a directory; None = the first installed English pipeline.
    """

    def __init__(self, model: str | None = None) -> None:
        try:
            import spacy
        except ImportError as e:
            raise UserError("the spacy extractor needs spaCy and a local English pipeline (`pip install spacy` "
                            "plus a model package such as en_core_web_sm); or use --extractor rule") from e
        name = model
        if name is None:
            installed = sorted(n for n in spacy.util.get_installed_models() if n.startswith("en"))
            if not installed:
                raise UserError("spaCy is installed but no English pipeline is (e.g. en_core_web_sm); install one "
                                "from a wheel you have, or use --extractor rule")
            name = installed[0]
        try:
            self.nlp = spacy.load(name)
        except OSError as e:
            raise UserError(f"cannot load the spaCy pipeline {name!r}: {e}") from e
        self.model = name
        self.name = f"spacy:{name}"

    def __call__(self, caption: str) -> list[NounPhrase]:
        doc = self.nlp(caption)
        out = []
        for chunk in doc.noun_chunks:
            if all(t.pos_ == "PRON" for t in chunk):
                continue  # "it", "we": names no object
            out.append(NounPhrase(chunk.text, chunk.start_char, chunk.end_char))
        return out


class RuleExtractor:
    name = "rule"

    def __call__(self, caption: str) -> list[NounPhrase]:
        return extract_rule(caption)


def get_extractor(name: str = "rule") -> RuleExtractor | SpacyExtractor:
    """"rule", "spacy" (first installed English pipeline) or "spacy:<model name or path>"."""
    if name == "rule":
        return RuleExtractor()
    if name == "spacy" or name.startswith("spacy:"):
        return SpacyExtractor(name.partition(":")[2] or None)
    from bench.util.errors import unknown_name

    raise unknown_name("phrase extractor", name, EXTRACTORS)
