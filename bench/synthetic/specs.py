"""What each synthetic task contains: its classes, its scene plan and its split sizes (configuration as data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

from bench.synthetic.concepts import (
    BASE_PAIRS,
    BASE_SHAPES,
    COLOURS,
    HELD_OUT,
    NOVEL_SHAPES,
    SEEN_PAIRS,
    pair_name,
)
from bench.synthetic.scenes import ScenePlan

# split key (task YAML) -> directory name of the Roboflow / ODinW export
SPLIT_DIRS: dict[str, str] = {"train": "train", "val": "valid", "test": "test"}
DEFAULT_COUNTS: dict[str, int] = {"train": 300, "val": 100, "test": 120}


def confusers(classes: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Base pairs sharing a colour or a shape with some class but not a class themselves: the
    distractors that force a model to bind colour to shape."""
    colours = {c for c, _ in classes}
    shapes = {s for _, s in classes}
    return tuple(p for p in BASE_PAIRS if p not in classes and (p[0] in colours or p[1] in shapes))


@dataclass(frozen=True)
class DetectionSpec:
    """A COCO / ODinW-style detection task. label: how an object is named ("shape" or "pair").

    Only objects whose label is one of `classes` are annotated; distractors stay unlabelled.
    """

    name: str
    description: str
    label: str
    classes: tuple[str, ...]
    plan: ScenePlan
    counts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_COUNTS))


DETECTION_TASKS: dict[str, DetectionSpec] = {
    s.name: s
    for s in (
        DetectionSpec(
            name="synth-shapes",
            description="Base shapes in any seen colour; shape-only prompts (seen concepts)",
            label="shape",
            classes=BASE_SHAPES,
            plan=ScenePlan(targets=BASE_PAIRS, num_objects=(1, 5)),
        ),
        DetectionSpec(
            name="synth-colours",
            description="Seen colour-shape classes among same-colour / same-shape distractors",
            label="pair",
            classes=tuple(pair_name(c, s) for c, s in SEEN_PAIRS),
            plan=ScenePlan(targets=SEEN_PAIRS, num_objects=(2, 6), distractors=confusers(SEEN_PAIRS),
                           distractor_prob=0.4),
        ),
        DetectionSpec(
            name="synth-compositions",
            description="Colour-shape pairs never seen together in pretraining (each word seen), among distractors",
            label="pair",
            classes=tuple(pair_name(c, s) for c, s in HELD_OUT),
            plan=ScenePlan(targets=HELD_OUT, num_objects=(2, 6), distractors=confusers(HELD_OUT),
                           distractor_prob=0.4),
        ),
        DetectionSpec(
            name="synth-novel",
            description="Novel shapes never drawn or named in pretraining (few-shot targets), among base shapes",
            label="shape",
            classes=NOVEL_SHAPES,
            plan=ScenePlan(targets=tuple(product(COLOURS, NOVEL_SHAPES)), num_objects=(2, 6),
                           distractors=BASE_PAIRS, distractor_prob=0.4),
        ),
        DetectionSpec(
            name="synth-crowded",
            description="Many tiny and small base shapes per image; shape-only prompts",
            label="shape",
            classes=BASE_SHAPES,
            plan=ScenePlan(targets=BASE_PAIRS, num_objects=(10, 22), sizes=("tiny", "small"), gap=2),
            counts={"train": 200, "val": 60, "test": 100},
        ),
    )
}

GROUNDING_PLAN = ScenePlan(targets=BASE_PAIRS, num_objects=(2, 6))
GROUNDING_COUNTS = {"train": 300, "val": 100, "test": 100}
GROUNDING_CAPTIONS_PER_IMAGE = 2

# LVIS-style: every colour x shape is a class (96 classes: the prompt needs chunking over 256 tokens).
# Frequency follows the concept split, the LVIS meaning of "rare": base pairs are frequent ("f"), held-out
# compositions common ("c"), novel shapes rare ("r") -- and they are drawn that much less often.
LVIS_GROUP_WEIGHT = {"f": 1.0, "c": 0.5, "r": 0.3}
LVIS_COUNTS = {"train": 300, "val": 120, "test": 120}
LVIS_NOT_EXHAUSTIVE_PROB = 0.15
LVIS_NUM_NEGATIVES = 6

PRETRAIN_IMAGES = 3000
PRETRAIN_PLAN = ScenePlan(targets=BASE_PAIRS, num_objects=(1, 6), sizes=("tiny", "small", "small", "large", "large"))
PRETRAIN_CROWDED_PLAN = ScenePlan(targets=BASE_PAIRS, num_objects=(8, 16), sizes=("tiny", "small"), gap=2)
PRETRAIN_CROWDED_PROB = 0.15

# Referring expressions (RefCOCO-style, MDETR refexp json): "the red star", "the small blue ring", one box each.
REFEXP_PLAN = ScenePlan(targets=BASE_PAIRS, num_objects=(2, 6))
REFEXP_COUNTS = {"train": 60, "val": 30, "test": 40}
REFEXP_PER_IMAGE = 2

ALL_TASKS: tuple[str, ...] = (*DETECTION_TASKS, "synth-grounding", "synth-lvis", "synth-refexp", "pretrain")


def lvis_frequency(colour: str, shape: str) -> str:
    if shape in NOVEL_SHAPES:
        return "r"
    return "c" if (colour, shape) in HELD_OUT else "f"
