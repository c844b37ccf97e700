"""The concepts of the synthetic world and the split that makes transfer measurable.

Three kinds of concept, so that each regime has something to show:

- BASE: the 8 base shapes in 56 of the 64 colour-shape pairs. Only these appear in pretraining
  (pictures, grounding captions and detection prompts).
- COMPOSITIONS (held out): 8 colour-shape pairs, one per colour and one per shape. Every word is
  seen in pretraining (the colour with other shapes, the shape with other colours) but the pair
  never is: no pretraining image even contains such an object.
- NOVEL shapes: 4 shapes never drawn or named in pretraining. Their words are in `vocabulary()`
  (so the offline tokenizer knows them) but carry no pretrained meaning: zero-shot is at chance and
  they are the few-shot targets.

Colours are chosen far apart in RGB and far from the muted backgrounds (see draw.py).
"""

from __future__ import annotations

from itertools import product

# name -> RGB. Saturated or extreme so that no background pixel (muted, mid-grey) can match one.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "yellow": (245, 220, 20),
    "purple": (150, 40, 190),
    "orange": (250, 140, 10),
    "white": (250, 250, 250),
    "black": (12, 12, 12),
}

BASE_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "heart")
NOVEL_SHAPES: tuple[str, ...] = ("hexagon", "crescent", "arrow", "hourglass")
SHAPES: tuple[str, ...] = BASE_SHAPES + NOVEL_SHAPES

PLURALS: dict[str, str] = {s: s + "s" for s in SHAPES} | {"cross": "crosses", "hourglass": "hourglasses"}

# size name -> side of the shape's square in pixels (inclusive range). Shapes stay >= 10 px so the
# 128-px world remains learnable by a small detector.
SIZES: dict[str, tuple[int, int]] = {"tiny": (10, 13), "small": (15, 22), "large": (27, 40)}

# Held-out colour-shape compositions: a permutation (each colour once, each shape once).
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("blue", "star"),
    ("red", "square"),
    ("green", "heart"),
    ("yellow", "circle"),
    ("purple", "triangle"),
    ("orange", "cross"),
    ("white", "diamond"),
    ("black", "ring"),
)

# The seen counterpart of HELD_OUT for synth-colours: also a permutation, disjoint from HELD_OUT,
# so "seen" and "unseen" composition tasks have the same structure and difficulty.
SEEN_PAIRS: tuple[tuple[str, str], ...] = (
    ("red", "star"),
    ("blue", "square"),
    ("green", "circle"),
    ("yellow", "heart"),
    ("purple", "ring"),
    ("orange", "triangle"),
    ("white", "cross"),
    ("black", "diamond"),
)

ALL_PAIRS: tuple[tuple[str, str], ...] = tuple(product(COLOURS, SHAPES))
BASE_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (c, s) for c, s in product(COLOURS, BASE_SHAPES) if (c, s) not in HELD_OUT
)

# Words of the grounding captions (captions.py builds every caption from these lists only).
ARTICLES = ("a", "the")  # "a" becomes "an" before a vowel (captions.py)
NUMERALS = {2: "two", 3: "three"}
RELATIONS = ("left of", "right of", "above", "below", "next to")
OPENERS = ("", "a picture of ", "an image with ", "we see ")
CONNECTIVE = "and"
PUNCTUATION = (".", ",")


# The glip-synth tokenizer's words in token-id order (bench/synthetic/preset.py). The order fixes which
# embedding row each word gets, so the pretrained synthetic checkpoints depend on it: append, never
# reorder. Every word of `vocabulary()` is here (tests/bench/synthetic/test_preset.py), so the world's
# text never falls back to characters; the rest are spare English words a user's prompt may use.
TOKENIZER_WORDS: tuple[str, ...] = (
    # colours
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray", "grey",
    "cyan", "magenta",
    # shapes, with plurals
    "square", "circle", "triangle", "rectangle", "star", "cross", "ring", "diamond", "ellipse", "hexagon",
    "heart", "crescent", "arrow", "hourglass", "disk", "bar", "shape", "object", "box",
    "squares", "circles", "triangles", "rectangles", "stars", "crosses", "rings", "diamonds", "hexagons",
    "hearts", "crescents", "arrows", "hourglasses", "shapes", "objects",
    # sizes, positions
    "small", "large", "big", "tiny", "left", "right", "top", "bottom", "center", "middle", "near", "far",
    "above", "below", "next", "beside", "under", "over", "image", "picture", "photo", "see", "we", "can",
    # common detection nouns
    "person", "cat", "dog", "car", "bird", "horse", "bicycle", "boat", "bus", "truck", "fish", "hand",
    # function words
    "a", "an", "the", "and", "of", "on", "in", "with", "there", "is", "are", "some", "this", "that", "which",
    "to", "at", "by", "it", "its", "one", "two", "three", "four", "five",
)

def pair_name(colour: str, shape: str) -> str:
    """The prompt name of a colour-shape class: 'red star'."""
    return f"{colour} {shape}"


def vocabulary() -> list[str]:
    """Every word any synthetic caption or prompt can contain (sorted, unique), novel shapes included.

    Multi-word items are split into words; punctuation used by prompts (". " separators) is listed too,
    so an offline WordPiece vocabulary built from this list never produces [UNK] on the world's text.
    """
    words: set[str] = set(COLOURS) | set(SHAPES) | set(PLURALS.values()) | set(SIZES)
    words |= set(ARTICLES) | set(NUMERALS.values()) | {CONNECTIVE} | set(PUNCTUATION)
    for phrase in RELATIONS + OPENERS:
        words |= set(phrase.split())
    return sorted(words)


def check_split() -> None:
    """Internal consistency of the concept split (run by the tests and at import of generate)."""
    for name, pairs in (("HELD_OUT", HELD_OUT), ("SEEN_PAIRS", SEEN_PAIRS)):
        if sorted(c for c, _ in pairs) != sorted(COLOURS) or sorted(s for _, s in pairs) != sorted(BASE_SHAPES):
            raise AssertionError(f"{name} must use every colour and every base shape exactly once")
    if set(HELD_OUT) & set(SEEN_PAIRS):
        raise AssertionError("HELD_OUT and SEEN_PAIRS overlap")
    if set(BASE_SHAPES) & set(NOVEL_SHAPES):
        raise AssertionError("a shape is both base and novel")
