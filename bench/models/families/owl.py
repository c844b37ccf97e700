"""transformers' OWLv2 and OWL-ViT: one query per class; OWLv2's boxes live in the image padded to a square."""

from bench.models.hf.families import Family

FAMILIES = (
    Family("owlv2", "queries", "square", trains=False, grounds=False),
    Family("owlvit", "queries", "image", trains=False, grounds=False),
)
