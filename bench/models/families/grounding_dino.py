"""transformers' Grounding DINO and MM Grounding DINO: one "a. b." caption, classes scored over their tokens."""

from bench.models.hf.families import Family

# IDEA-Research/GroundingDINO demo/test_ap_on_coco.py (the authors' COCO evaluation): PostProcessCocoGrounding
# keeps the top num_select=300 (query, class) pairs per image, with no score threshold; boxes are scaled to
# the original size and not clipped (this harness clips, as for every family).
PUBLISHED = {"detections_per_image": 300, "score_threshold": 0.0,
             "source": "IDEA-Research/GroundingDINO demo/test_ap_on_coco.py, PostProcessCocoGrounding(num_select=300)"}

FAMILIES = (
    Family("grounding-dino", "caption", "image", trains=True, grounds=True, published=PUBLISHED),
    Family("mm-grounding-dino", "caption", "image", trains=True, grounds=True, published=PUBLISHED),
)
