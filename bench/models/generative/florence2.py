"""Florence-2: one phrase per prompt, answers as `label<loc_x1><loc_y1><loc_x2><loc_y2>...` on 1000 bins.

Coordinates: each <loc_D> token is a bin of 1000 over the image's width (x) or height (y), x first
(xmin, ymin, xmax, ymax); a bin maps back to the bin's centre in original pixels, truncated to an integer,
exactly as transformers' Florence2PostProcessor.dequantize does (transformers 5.24
models/florence2/processing_florence2.py lines 318-343: `(bin + 0.5) * size / 1000`, then `.int()`).
The processor resizes the whole image to a square without cropping, so bins are fractions of the
original image and `image_size=(W, H)` of the original is what the processor's post-processing takes.

Prompts (the processor's own task tokens, lines 85-93): `<OPEN_VOCABULARY_DETECTION>` + one phrase
(the model locates one phrase at a time, so a detection task is one prompt per class), and
`<CAPTION_TO_PHRASE_GROUNDING>` + a caption for grounding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.models.generative.answers import Parse, Parsed, View

NAME = "florence-2"
MODEL_TYPES = ("florence2",)
MODEL_CLASS = "Florence2ForConditionalGeneration"
BINS = 1000
COORDINATES = ("<loc_D> tokens, 1000 bins per axis, x first (xmin, ymin, xmax, ymax) over the original image; "
               "pixel = int((bin + 0.5) * size / 1000) as transformers' Florence2PostProcessor.dequantize")
PROMPTING = "one class per prompt (<OPEN_VOCABULARY_DETECTION> locates one phrase at a time)"
CLASSES_PER_PROMPT = 1
GROUNDS = True
TRAINS = None  # no detect-format training view (WHY_NO_TRAINING)
WHY_NO_TRAINING = ("its transformers class gives a language-model loss on target text only; the harness has no "
                   "detection-to-text training view for it yet")
DETECT_TASK = "<OPEN_VOCABULARY_DETECTION>"
GROUND_TASK = "<CAPTION_TO_PHRASE_GROUNDING>"

_PIECE = re.compile(r"<loc_(\d+)>|<[^<>]*>|[^<]+|<")


def detection_prompt(names: Sequence[str]) -> str:
    """The task token and the one phrase; the processor expands it to "Locate {phrase} in the image."."""
    if len(names) != 1:
        raise ValueError(f"Florence-2 open-vocabulary detection takes one phrase per prompt, got {len(names)}")
    return DETECT_TASK + names[0]


def grounding_prompt(caption: str) -> str:
    return GROUND_TASK + caption


def dequantize(bin_: int, size: int) -> float:
    """A bin's centre in pixels, truncated to an integer as the processor does."""
    return float(int((bin_ + 0.5) * size / BINS))


def quantize(pixel: float, size: int) -> int:
    """The bin of a pixel coordinate (the processor's quantize: floor(pixel / (size / 1000)), clamped)."""
    return max(0, min(BINS - 1, int(pixel // (size / BINS))))


def format_answer(objects: Sequence[tuple[str, Sequence[float]]], width: int, height: int) -> str:
    """An answer in Florence-2's format for (label, xyxy pixels) objects (tests, and the token budget)."""
    out = ""
    for label, (x1, y1, x2, y2) in objects:
        out += label + "".join(f"<loc_{quantize(v, s)}>" for v, s in ((x1, width), (y1, height), (x2, width),
                                                                        (y2, height)))
    return out


def parse(text: str, width: int, height: int) -> Parse:
    """Label text followed by groups of four <loc_D>; a label may own several groups.

    A group cut short, a bin outside 0-999, a box with no label, or text with no box after it (a
    truncated answer) is one unparseable part each; so is each <poly>...</poly> polygon (open-vocabulary
    detection may answer with polygons, which the processor returns without boxes). Other tags (<s>,
    <pad>, <od>) are ignored.
    """
    result = Parse()
    label, label_span, locs = "", (0, 0), []  # locs: (bin, start, end)
    in_poly = had_poly = False

    def flush() -> None:
        if not locs:
            if label.strip() and not had_poly:
                result.unparseable += 1
            return
        groups, rest = divmod(len(locs), 4)
        result.unparseable += int(rest > 0)
        for g in range(groups):
            quad = locs[4 * g: 4 * g + 4]
            bins = [b for b, _, _ in quad]
            if not label.strip() or max(bins) >= BINS:
                result.unparseable += 1
                continue
            x1, y1, x2, y2 = (dequantize(b, s) for b, s in zip(bins, (width, height, width, height)))
            result.objects.append(Parsed(label.strip(), (x1, y1, x2, y2), label_span, (quad[0][1], quad[-1][2])))

    for m in _PIECE.finditer(text):
        if m.group(0) in ("<poly>", "</poly>"):
            in_poly = m.group(0) == "<poly>"
            if in_poly:
                result.unparseable += 1  # a polygon, not a box
                had_poly = True
        elif in_poly:
            continue
        elif m.group(1) is not None:
            locs.append((int(m.group(1)), m.start(), m.end()))
        elif m.group(0).startswith("<") and len(m.group(0)) > 1:
            continue  # another tag
        else:
            if locs or had_poly:
                flush()
                label, locs, had_poly = "", [], False
            if not label:
                label_span = (m.start(), m.end())
            else:
                label_span = (label_span[0], m.end())
            label += m.group(0)
    flush()
    return result


def parse_answer(text: str, view: View) -> Parse:
    return parse(text, view.width, view.height)
