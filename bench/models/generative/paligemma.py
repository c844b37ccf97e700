"""PaliGemma (1 and 2): "detect a ; b" -> `<locYYYY><locXXXX><locYYYY><locXXXX> label` objects joined by " ; ".

Coordinates: four <locDDDD> tokens, y first (ymin, xmin, ymax, xmax), each a bin of 0..1023 over the
image's height or width. The authors' evaluator maps a bin back by dividing by 1023 (big_vision,
big_vision/evaluators/proj/paligemma/transfers/segmentation.py at 5f95305: `bbox = tokens[:, :4] / 1023`
then `y1, x1, y2, x2 = bb` and `y1 * h, x1 * w, ...`); that is the convention here (pixel =
bin / 1023 * size, continuous). The image processor (SigLIP) resizes the whole image to a square
without cropping, so bins are fractions of the original image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.models.generative.answers import Parse, Parsed, View

NAME = "paligemma"
MODEL_TYPES = ("paligemma",)
MODEL_CLASS = "PaliGemmaForConditionalGeneration"
MAX_BIN = 1023
COORDINATES = ("<locDDDD> tokens, y first (ymin, xmin, ymax, xmax), bins 0-1023 over the original image; "
               "pixel = bin / 1023 * size (big_vision's evaluator)")
PROMPTING = "the task's chunk of classes per prompt: 'detect a ; b ; c'"
CLASSES_PER_PROMPT = None  # the task's chunk
GROUNDS = False
WHY_NO_GROUNDING = ("its detect prompt names classes to find, not phrases of a caption; it has no caption-to-phrase "
                    "grounding format")
TRAINS = ("transformers' language-model loss on the suffix: each image's boxes of the prompt's classes written "
          "in the detect format (bench.models.generative.training)")
WHY_NO_TRAINING = ""
SEPARATOR = " ; "

_OBJECT = re.compile(r"^\s*<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>\s*([^<;]*?)\s*$")


def detection_prompt(names: Sequence[str]) -> str:
    """The PaliGemma detection prefix; the processor adds the image tokens, <bos> and the closing newline."""
    return "detect " + SEPARATOR.join(names)


def to_bin(pixel: float, size: int) -> int:
    return max(0, min(MAX_BIN, round(pixel / size * MAX_BIN)))


def format_answer(objects: Sequence[tuple[str, Sequence[float]]], width: int, height: int) -> str:
    """An answer in PaliGemma's format for (label, xyxy pixels) objects (tests, and the token budget)."""
    parts = []
    for label, (x1, y1, x2, y2) in objects:
        locs = "".join(f"<loc{to_bin(v, s):04d}>" for v, s in ((y1, height), (x1, width), (y2, height), (x2, width)))
        parts.append(f"{locs} {label}")
    return SEPARATOR.join(parts)


def parse(text: str, width: int, height: int) -> Parse:
    """Objects split at ";": each four <locDDDD> then a label. Anything else in a part (a missing or fifth
    loc token, no label, a bin past 1023) makes that part unparseable; empty parts are skipped."""
    result = Parse()
    start = 0
    for part in text.split(";"):
        span = (start, start + len(part))
        start += len(part) + 1
        if not part.strip():
            continue
        m = _OBJECT.match(part)
        if m is None or not m.group(5):
            result.unparseable += 1
            continue
        y1, x1, y2, x2 = (int(m.group(i)) for i in range(1, 5))
        if max(y1, x1, y2, x2) > MAX_BIN:
            result.unparseable += 1
            continue
        box = (x1 / MAX_BIN * width, y1 / MAX_BIN * height, x2 / MAX_BIN * width, y2 / MAX_BIN * height)
        label_span = (span[0] + m.start(5), span[0] + m.end(5))
        result.objects.append(Parsed(m.group(5), box, label_span, (span[0] + m.start(1) - 4, span[0] + m.end(4) + 1)))
    return result


def parse_answer(text: str, view: View) -> Parse:
    return parse(text, view.width, view.height)


def processor_text(prompt: str) -> str:
    """The prompt after the image placeholder: the processor expands it and adds <bos> and the newline."""
    return "<image>" + prompt
