"""OmDet-Turbo's post-processing order: class-wise NMS on the unclipped boxes, then clip to the image.

transformers' OmDetTurboProcessor (models/omdet_turbo/processing_omdet_turbo.py, _post_process_boxes_for_image)
scales the boxes to pixels, runs batched_nms, and only then calls clip_boxes. A box that crosses the image
border can overlap a neighbour little before clipping and fully after it: here box A spans x -60..40 and box B
x 0..40 of a 100 x 100 image, both the same class. Unclipped IoU = 4000 / 10000 = 0.4 < 0.5: both stay.
Clipped first, A becomes B (IoU 1) and B would be suppressed.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from bench.models.base import DetectSettings, detect_dicts
from bench.models.hf import build_hf_adapter
from bench.models.hf.prompts import TextChunk
from bench.testing.hf import save_tiny

SIDE = 100
A = [-0.1, 0.5, 1.0, 1.0]  # normalised cxcywh: x -60..40, the whole height
B = [0.2, 0.5, 0.4, 1.0]  # x 0..40


class OneImage:
    image_ids = [1]

    def load_image(self, image_id: int) -> Image.Image:
        return Image.fromarray(np.zeros((SIDE, SIDE, 3), dtype=np.uint8))


def two_boxes(**inputs):
    logits = torch.full((1, 2, 1), -10.0)
    logits[0, 0, 0], logits[0, 1, 0] = 2.0, 1.0  # A above B, one class
    return SimpleNamespace(decoder_class_logits=logits, decoder_coord_logits=torch.tensor([[A, B]]))


def test_nms_runs_on_unclipped_boxes_then_clips(tmp_path, monkeypatch):
    adapter = build_hf_adapter(f"hf:{save_tiny('omdet-turbo', tmp_path / 'omdet')}")
    monkeypatch.setattr(adapter.loaded.model, "forward", two_boxes)
    preds = detect_dicts(adapter, OneImage(), [(TextChunk(("thing",)), [3])], DetectSettings(per_chunk_cap=10,
                                                                                       per_image_cap=10))
    assert len(preds) == 2  # NMS saw IoU 0.4, kept both
    assert preds[0]["bbox"] == pytest.approx([0.0, 0.0, 40.0, 100.0], abs=1e-3)  # A, clipped after NMS
    assert preds[1]["bbox"] == pytest.approx([0.0, 0.0, 40.0, 100.0], abs=1e-3)
