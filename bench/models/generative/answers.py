"""What every text-answering family shares after generation: parsed objects, label matching, scores, counts.

A family's parser turns the decoded answer into `Parsed` objects (label text, the label's character span
in the answer, a box already in original pixels, and the spans of the box's own tokens); anything it
cannot read is counted, never raised. `AnswerCounts` is what the record reports (a format compliance
rate), and `token_spans` + `span_score` give each box its score from the generation's token
probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Parsed:
    """One box read from an answer: label text, xyxy in original pixels, and where they sit in the answer.

    label_span: the label's characters in the answer ((0, 0) when the answer carries no label, e.g. a
    Kosmos-2 box for the prompt's one phrase); box_span: the characters of the box's coordinate tokens.
    """

    label: str
    box: tuple[float, float, float, float]
    label_span: tuple[int, int]
    box_span: tuple[int, int]


@dataclass
class Parse:
    """A parser's result: the boxes it read and how many parts of the answer it could not read."""

    objects: list[Parsed] = field(default_factory=list)
    unparseable: int = 0  # parts (an object's text) that looked like an answer but did not parse


@dataclass
class AnswerCounts:
    """Format compliance over a run: answers, boxes read, parts not read, labels that name no prompted class."""

    answers: int = 0
    parsed_boxes: int = 0
    unparseable: int = 0
    outside_prompt: int = 0
    empty_answers: int = 0
    unmatched_labels: dict[str, int] = field(default_factory=dict)

    def add(self, parse: Parse, unmatched: Sequence[str]) -> None:
        self.answers += 1
        self.parsed_boxes += len(parse.objects)
        self.unparseable += parse.unparseable
        self.outside_prompt += len(unmatched)
        self.empty_answers += int(not parse.objects and not parse.unparseable)
        for label in unmatched:
            self.unmatched_labels[label] = self.unmatched_labels.get(label, 0) + 1

    def as_dict(self, max_listed: int = 50) -> dict[str, Any]:
        """For the record: the counts, and the most frequent unmatched labels (at most `max_listed`)."""
        top = sorted(self.unmatched_labels.items(), key=lambda kv: (-kv[1], kv[0]))[:max_listed]
        return {"answers": self.answers, "parsed_boxes": self.parsed_boxes, "unparseable": self.unparseable,
                "labels_outside_prompt": self.outside_prompt, "empty_answers": self.empty_answers,
                "unmatched_labels": dict(top), "unmatched_label_kinds": len(self.unmatched_labels)}


def label_key(text: str) -> str:
    """The form labels are compared in: surrounding white space dropped (class names come cleaned by the task)."""
    return text.strip()


def match_labels(objects: Sequence[Parsed], classes: dict[str, int]) -> tuple[list[tuple[int, int]], list[str]]:
    """(index, category id) of the objects whose label is exactly one of `classes` (label -> id), and the
    labels that are none of them."""
    matched, unmatched = [], []
    for k, obj in enumerate(objects):
        cat = classes.get(label_key(obj.label))
        if cat is None:
            unmatched.append(label_key(obj.label))
        else:
            matched.append((k, cat))
    return matched, unmatched


def token_spans(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """The decoded answer (special tokens kept) and each token's character span in it.

    Decodes growing prefixes, so a token's span is exactly the text it added (byte-level pieces that only
    complete a character together give the earlier ones an empty span).
    """
    spans, prev = [], ""
    for k in range(len(ids)):
        text = tokenizer.decode(list(ids[: k + 1]), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        start = min(len(prev), len(text))
        spans.append((start, len(text)))
        prev = text
    return prev, spans


def span_score(span: tuple[int, int], spans: Sequence[tuple[int, int]], token_logprobs: torch.Tensor) -> float:
    """exp(sum of log-probabilities of the tokens whose characters overlap `span`): the probability the
    generation gave those tokens. An empty span, or one no token covers, scores 1.0."""
    s, e = span
    idx = [k for k, (a, b) in enumerate(spans) if b > a and a < e and b > s]
    if not idx:
        return 1.0
    return float(token_logprobs[idx].double().sum().exp())


@dataclass(frozen=True)
class View:
    """What a parser needs besides the text: the original size, the size the model saw, the prompt's phrase."""

    width: int
    height: int
    input_width: int | None = None  # the resized input (Qwen2.5-VL answers in its pixels)
    input_height: int | None = None
    phrase: str | None = None  # the one phrase of a one-phrase prompt (Kosmos-2 answers carry no label)
