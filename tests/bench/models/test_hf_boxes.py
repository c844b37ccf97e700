"""Box conversion of every family: a white box of known pixels in, the same box out in the COCO predictions file.

The model is replaced by a stand-in that finds the white pixels in the tensor the family's own image
processor made and reports them as the family's normalised (cx, cy, w, h) output, scored only for the
class "square". Everything between the image and the COCO file (processor, box frame, scaling,
category mapping, xywh) is the adapter's real code.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from bench.models.base import DetectorAdapter, DetectSettings, detect_dicts
from bench.models.hf import build_hf_adapter
from bench.models.hf.prompts import TextChunk, make_caption
from bench.results import store
from bench.testing.hf import FAMILIES, save_tiny

WIDTH, HEIGHT = 160, 100  # not square: OWLv2's padded-square frame differs from the image frame
BOX = (40, 20, 100, 60)  # x1, y1, x2, y2 in original pixels
CATEGORIES = [7, 9]  # "circle", "square"


class OneImage:
    """The detection-dataset surface the adapter uses: image ids and their PIL images."""

    image_ids = [5]

    def load_image(self, image_id: int) -> Image.Image:
        arr = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        x1, y1, x2, y2 = BOX
        arr[y1:y2, x1:x2] = 255
        return Image.fromarray(arr)


def white_box(pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None) -> torch.Tensor:
    """Normalised cxcywh of the white pixels, relative to the (unpadded, if masked) processed image."""
    img = pixel_values[0].mean(0)
    h, w = img.shape
    if pixel_mask is not None:
        h, w = int(pixel_mask[0].any(1).sum()), int(pixel_mask[0].any(0).sum())
    white = img > img.min() + 0.75 * (img.max() - img.min())
    rows, cols = white.any(1).nonzero().flatten(), white.any(0).nonzero().flatten()
    x1, x2, y1, y2 = cols.min() / w, (cols.max() + 1) / w, rows.min() / h, (rows.max() + 1) / h
    return torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def stand_in(family: str, tokenizer):
    square = tokenizer.convert_tokens_to_ids("square")

    def forward(**inputs):
        box = white_box(inputs["pixel_values"], inputs.get("pixel_mask"))
        if family in ("grounding-dino", "mm-grounding-dino"):
            ids = inputs["input_ids"][0]
            logits = torch.full((1, 4, 32), -10.0)
            logits[0, 0, : len(ids)] = torch.where(ids == square, 10.0, -10.0)
            return SimpleNamespace(logits=logits, pred_boxes=box.expand(1, 4, 4))
        logits = torch.full((1, 4, 2), -10.0)
        logits[0, 0, 1] = 10.0  # query 0 is the box; class 1 is "square"
        if family == "omdet-turbo":
            return SimpleNamespace(decoder_class_logits=logits, decoder_coord_logits=box.expand(1, 4, 4))
        return SimpleNamespace(logits=logits, pred_boxes=box.expand(1, 4, 4))

    return forward


@pytest.mark.parametrize("family", FAMILIES)
def test_known_box_comes_back_in_original_pixels(family, tmp_path, monkeypatch):
    adapter = build_hf_adapter(f"hf:{save_tiny(family, tmp_path / family)}")
    monkeypatch.setattr(adapter.loaded.model, "forward", stand_in(family, adapter.loaded.tokenizer))
    entries = ("circle", "square")
    chunk = make_caption(entries, [(0, 6), (0, 6)]) if adapter.loaded.family.text == "caption" else TextChunk(entries)
    preds = detect_dicts(adapter, OneImage(), [(chunk, CATEGORIES)], DetectSettings(per_chunk_cap=100, per_image_cap=100))
    store.write_predictions(tmp_path, preds)
    top = store.read_predictions(tmp_path)[0]
    assert top["image_id"] == 5 and top["category_id"] == 9
    x1, y1, x2, y2 = BOX
    # one processed pixel is up to 2.5 original pixels (OWL's 64 x 64 input of a 160-wide image)
    assert top["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=3.0)


def test_chunks_merge_by_score_under_the_image_cap(tmp_path, monkeypatch):
    adapter = build_hf_adapter(f"hf:{save_tiny('grounding-dino', tmp_path / 'gd')}")
    assert isinstance(adapter, DetectorAdapter)  # the harness's model seam (bench/models/base.py)
    monkeypatch.setattr(adapter.loaded.model, "forward", stand_in("grounding-dino", adapter.loaded.tokenizer))
    chunks = [(make_caption(["circle"], [(0, 6)]), [7]), (make_caption(["square"], [(0, 6)]), [9])]
    capped = detect_dicts(adapter, OneImage(), chunks, DetectSettings(per_chunk_cap=3, per_image_cap=1))
    assert [p["category_id"] for p in capped] == [9]  # the second chunk's class holds the only high score
    kept = detect_dicts(adapter, OneImage(), chunks, DetectSettings(per_chunk_cap=3, per_image_cap=None))
    assert len(kept) == 6 and kept[0]["category_id"] == 9
    assert [p["score"] for p in kept] == sorted((p["score"] for p in kept), reverse=True)
