"""Kosmos-2: `<grounding><phrase> X</phrase>` -> `<object><patch_index_A><patch_index_B></object>` boxes on a 32 x 32 grid.

Coordinates: a box is two patch-index tokens, the cells of its upper-left and lower-right corners on a
32 x 32 grid over the image (index = row * 32 + column); a cell maps back as transformers'
patch_index_to_coordinate (transformers 5.24 models/kosmos2/processing_kosmos2.py lines 552-594): corners
at cell centres, except where both corners share a row or a column (or are one cell), where the box takes
the whole cells; the [0, 1] result times the original width / height gives pixels (the processor resizes
the whole image to a square, no crop). Several boxes of one phrase are separated by
</delimiter_of_multi_objects/>. The answer names no label: its boxes belong to the prompt's one phrase,
or to a <phrase> the answer opens itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.models.generative.answers import Parse, Parsed, View

NAME = "kosmos-2"
MODEL_TYPES = ("kosmos-2",)
MODEL_CLASS = "Kosmos2ForConditionalGeneration"
GRID = 32
COORDINATES = ("two <patch_index_NNNN> tokens per box: upper-left and lower-right cells of a 32 x 32 grid over the "
               "original image, mapped as transformers' patch_index_to_coordinate (cell centres; whole cells "
               "where the corners share a row or column) times width / height")
PROMPTING = "one class per prompt: <grounding><phrase> class</phrase>"
CLASSES_PER_PROMPT = 1
GROUNDS = True
TRAINS = None  # no detect-format training view (WHY_NO_TRAINING)
WHY_NO_TRAINING = ("its transformers class gives a language-model loss on text only; the harness has no "
                   "detection-to-text training view for it")
DELIMITER = "</delimiter_of_multi_objects/>"

_PIECE = re.compile(r"<patch_index_(\d+)>|<phrase>|</phrase>|<object>|</object>|" + re.escape(DELIMITER)
                    + r"|<[^<>]*>|[^<]+|<")


def detection_prompt(names: Sequence[str]) -> str:
    if len(names) != 1:
        raise ValueError(f"Kosmos-2 grounds one phrase per prompt, got {len(names)}")
    return f"<grounding><phrase> {names[0]}</phrase>"


def cell_box(ul: int, lr: int, grid: int = GRID) -> tuple[float, float, float, float]:
    """[0, 1] (x1, y1, x2, y2) of two corner cells (transformers' patch_index_to_coordinate)."""
    cell = 1.0 / grid
    ul_x, ul_y, lr_x, lr_y = ul % grid, ul // grid, lr % grid, lr // grid
    if ul == lr or ul_x == lr_x or ul_y == lr_y:
        return ul_x * cell, ul_y * cell, lr_x * cell + cell, lr_y * cell + cell
    return ul_x * cell + cell / 2, ul_y * cell + cell / 2, lr_x * cell + cell / 2, lr_y * cell + cell / 2


def format_answer(objects: Sequence[tuple[str, Sequence[float]]], width: int, height: int) -> str:
    """The boxes of one phrase in Kosmos-2's format (labels are not written: the prompt names the phrase)."""
    pairs = []
    for _, (x1, y1, x2, y2) in objects:
        ul = min(GRID - 1, int(y1 / height * GRID)) * GRID + min(GRID - 1, int(x1 / width * GRID))
        lr = min(GRID - 1, int(y2 / height * GRID)) * GRID + min(GRID - 1, int(x2 / width * GRID))
        pairs.append(f"<patch_index_{ul:04d}><patch_index_{lr:04d}>")
    return "<object>" + DELIMITER.join(pairs) + "</object>"


def parse(text: str, width: int, height: int, phrase: str | None) -> Parse:
    """Every <object>...</object> of the answer: pairs of patch indices split by the delimiter. Its label:
    the <phrase> just before it in the answer, else the prompt's phrase. A pair that is not two indices
    in 0-1023, or an object never closed (a truncated answer), is one unparseable part."""
    result = Parse()
    label, label_span = phrase or "", (0, 0)
    in_phrase = in_object = False
    pair: list[tuple[int, int, int]] = []  # (index, start, end)
    bad = False

    def close_pair() -> None:
        nonlocal pair, bad
        if pair or bad:
            if len(pair) != 2 or bad or max(i for i, _, _ in pair) >= GRID * GRID or not label.strip():
                result.unparseable += 1
            else:
                x1, y1, x2, y2 = cell_box(pair[0][0], pair[1][0])
                result.objects.append(Parsed(label.strip(), (x1 * width, y1 * height, x2 * width, y2 * height),
                                             label_span, (pair[0][1], pair[1][2])))
        pair, bad = [], False

    for m in _PIECE.finditer(text):
        piece = m.group(0)
        if piece == "<phrase>":
            in_phrase, label, label_span = True, "", (m.end(), m.end())
        elif piece == "</phrase>":
            in_phrase = False
        elif in_phrase:
            label, label_span = label + piece, (label_span[0], m.end())
        elif piece == "<object>":
            in_object, pair, bad = True, [], False
        elif piece == "</object>":
            close_pair()
            in_object = False
        elif in_object and piece == DELIMITER:
            close_pair()
        elif in_object and m.group(1) is not None:
            pair.append((int(m.group(1)), m.start(), m.end()))
        elif in_object and piece.strip():
            bad = True  # anything else inside an object
    if in_object:
        result.unparseable += 1  # never closed
    return result


def parse_answer(text: str, view: View) -> Parse:
    return parse(text, view.width, view.height, view.phrase)
