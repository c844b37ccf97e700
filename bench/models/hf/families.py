"""What differs between transformers' zero-shot detectors, as data: text input, box frame, training, grounding.

box_frame says which image the model's normalised boxes are relative to, so they map back to original
pixels: "image" (the resized image keeps the original's frame: x by width, y by height) or "square"
(OWLv2 pads the image to a square at the bottom/right first: both axes by the longer side).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """One model family: how it is prompted, where its boxes live, and what it can do."""

    name: str
    text: str  # "caption" (one "a. b." caption, token spans per class) | "queries" (one query per class) | "classes+task"
    box_frame: str  # "image" | "square"
    trains: bool  # the transformers class returns a training loss from `labels`
    grounds: bool  # scores tokens of free text, so it can localise a caption's phrases
    nms_iou: float | None = None  # class-wise NMS of the family's own post-processing


FAMILIES: dict[str, Family] = {
    "grounding-dino": Family("grounding-dino", "caption", "image", trains=True, grounds=True),
    "mm-grounding-dino": Family("mm-grounding-dino", "caption", "image", trains=True, grounds=True),
    "owlv2": Family("owlv2", "queries", "square", trains=False, grounds=False),
    "owlvit": Family("owlvit", "queries", "image", trains=False, grounds=False),
    # transformers' OmDetTurboProcessor post-processing: class-wise NMS at IoU 0.5
    "omdet-turbo": Family("omdet-turbo", "classes+task", "image", trains=False, grounds=False, nms_iou=0.5),
}

WHY_NO_GROUNDING = ("its text input is one independent query per class, not a caption whose tokens it scores, so it "
                    "cannot localise a phrase inside a sentence")
WHY_NO_TRAINING = "its transformers class computes no training loss from labels"
