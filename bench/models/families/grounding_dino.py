"""transformers' Grounding DINO and MM Grounding DINO: one "a. b." caption, classes scored over their tokens."""

from bench.models.hf.families import Family

FAMILIES = (
    Family("grounding-dino", "caption", "image", trains=True, grounds=True),
    Family("mm-grounding-dino", "caption", "image", trains=True, grounds=True),
)
