"""SAM 3 (transformers' Sam3Model) as a zero-shot detector: one text concept per forward, the image's vision
features computed once per image and reused for every class (bench.models.sam3.adapter)."""
