"""Per-image training captions for detection data with more classes than one prompt holds (LVIS: 866 base
classes, 40 per evaluation chunk): the official detection-to-grounding conversion used to train GLIP on
Objects365 (microsoft/GLIP maskrcnn_benchmark/data/datasets/od_to_grounding.py,
convert_object_detection_to_grounding_optimized_for_od and check_for_positive_overflow; settings of
configs/pretrain/glip_Swin_T_O365.yaml: RANDOM_SAMPLE_NEG 85, CONTROL_PROB (0, 0, 0.5, 0), SEPARATION_TOKENS ". ").

Per image, with one seeded `random.Random`:

1. positives: the image's classes, shuffled, kept while their entries ("name" + separator) fit the token
   budget (max_query_len - 2: [CLS] and [SEP]); the boxes of a positive left out are dropped;
2. how many negatives: all `negatives` with probability `all_negatives_prob`, else a uniform count in
   1..negatives (never more than the classes left);
3. which: drawn without replacement from the vocabulary's other classes, kept while the budget left after
   the positives stays above zero;
4. positives and negatives shuffled together and joined by the separator.

Differences from the official code, on purpose: one seeded generator instead of Python's and numpy's
global ones; negatives are drawn from the classes not on the image (the official draw may pick a positive
and then drops it, so it gives fewer negatives); the positives' budget is what the kept positives take
(the official count also includes the first one that did not fit).

The vocabulary is what the caller passes: for an open-vocabulary task the base view's classes, so a
novel class can be neither a positive nor a negative.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.util.errors import UserError

SAMPLED = "sampled"  # the one train-prompt rule a task file can declare (the default is the fixed caption)
DEFAULTS = {"negatives": 85, "all_negatives_prob": 0.5}  # official RANDOM_SAMPLE_NEG, CONTROL_PROB[2]


@dataclass(frozen=True)
class TrainPrompt:
    """A task's `train_prompt` setting: per-image sampled captions with these negative-sampling numbers."""

    negatives: int = DEFAULTS["negatives"]
    all_negatives_prob: float = DEFAULTS["all_negatives_prob"]

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> TrainPrompt:
        """From a checked task-file block ({rule: sampled, negatives, all_negatives_prob})."""
        return cls(negatives=int(block.get("negatives", DEFAULTS["negatives"])),
                   all_negatives_prob=float(block.get("all_negatives_prob", DEFAULTS["all_negatives_prob"])))

    def as_dict(self, token_budget: int | None = None) -> dict[str, Any]:
        """What a record states (provenance.train_prompt)."""
        out: dict[str, Any] = {"rule": SAMPLED, "negatives": self.negatives,
                               "all_negatives_prob": self.all_negatives_prob,
                               "source": "microsoft/GLIP od_to_grounding.py (O365 pre-training: RANDOM_SAMPLE_NEG 85, "
                                         "CONTROL_PROB (0, 0, 0.5, 0))"}
        if token_budget is not None:
            out["token_budget"] = token_budget
        return out


@dataclass(frozen=True)
class SampledCaption:
    """One image's caption: its classes in caption order, each class name's character span, and the image's
    classes that did not fit (their boxes are left out of the target)."""

    caption: str
    category_ids: list[int]
    spans: list[tuple[int, int]]
    dropped: list[int]

    def span_of(self) -> dict[int, tuple[int, int]]:
        return dict(zip(self.category_ids, self.spans))


class CaptionSampler:
    """Per-image captions over a fixed class vocabulary (entries = prefix, name, suffix per category id).

    count_tokens: the model tokenizer's token count of a text without special tokens; budget: the tokens
    a caption may take (the model's max_query_len - 2).
    """

    def __init__(self, entries: Mapping[int, tuple[str, str, str]], count_tokens: Callable[[str], int], budget: int,
                 separator: str, settings: TrainPrompt, seed: int) -> None:
        self.entries = dict(entries)
        self.ids = sorted(self.entries)
        self.count_tokens = count_tokens
        self.budget = budget
        self.separator = separator
        self.settings = settings
        self.rng = random.Random(f"train-captions:{seed}")  # a str seed: the same stream on every Python >= 3.2
        self._tokens: dict[int, int] = {}
        self.drawn = {"captions": 0, "negatives": 0, "positives_dropped": 0}  # for the record

    def record(self) -> dict[str, Any]:
        """The rule, its settings and what it drew (provenance.train_prompt of a run's record)."""
        return {**self.settings.as_dict(self.budget), "separator": self.separator, "vocabulary": len(self.ids),
                "drawn": dict(self.drawn)}

    def tokens(self, category_id: int) -> int:
        """Tokens of the class's entry followed by the separator (official: tokenize(name + ". "))."""
        if category_id not in self._tokens:
            prefix, name, suffix = self.entries[category_id]
            self._tokens[category_id] = self.count_tokens(prefix + name + suffix + self.separator)
        return self._tokens[category_id]

    def sample(self, positives: Iterable[int]) -> SampledCaption:
        """The caption of an image showing `positives` (category ids, repeats allowed; all in the vocabulary)."""
        present = sorted(set(positives))
        unknown = [c for c in present if c not in self.entries]
        if unknown:
            raise UserError(f"category ids {unknown} are not in the training vocabulary of {len(self.ids)} classes")
        self.rng.shuffle(present)
        kept, used = self._fit(present, self.budget)
        negatives, _ = self._fit(self._negatives(set(present)), self.budget - used, strict=True)
        order = negatives + kept
        self.rng.shuffle(order)
        caption, spans = self._join(order)
        self.drawn["captions"] += 1
        self.drawn["negatives"] += len(negatives)
        self.drawn["positives_dropped"] += len(present) - len(kept)
        return SampledCaption(caption, order, spans, [c for c in present if c not in kept])

    def _negatives(self, present: set[int]) -> list[int]:
        pool = [c for c in self.ids if c not in present]
        full = min(self.settings.negatives, len(pool))
        if full == 0:
            return []
        count = full if self.rng.random() < self.settings.all_negatives_prob else self.rng.randint(1, full)
        return self.rng.sample(pool, count)

    def _fit(self, ids: Sequence[int], budget: int, strict: bool = False) -> tuple[list[int], int]:
        """The leading ids whose tokens fit `budget` (strict: the budget left must stay > 0, as the official
        negative screen), and the tokens they take."""
        kept, used = [], 0
        for c in ids:
            left = budget - used - self.tokens(c)
            if left < 0 or (strict and left == 0):
                break
            kept.append(c)
            used += self.tokens(c)
        return kept, used

    def _join(self, order: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
        from glip.prompts import build_caption

        prefixes, names, suffixes = zip(*(self.entries[c] for c in order)) if order else ((), (), ())
        return build_caption(names, self.separator, prefixes, suffixes)
