"""glip-synth learns: from random weights it overfits four drawn images (a red square and a blue circle on
a plain background, caption "red square. blue circle") in a few dozen AdamW steps on one CPU thread; the
loss falls and each phrase's top detection lands on its own object (IoU > 0.5)."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from bench.synthetic.preset import glip_synth
from glip.model import GLIP
from glip.ops.boxes import box_iou
from glip.prompts import positive_map
from glip.structures import TrainTarget

CAPTION = "red square. blue circle"
SPANS = [[(0, 10)], [(12, 23)]]  # "red square", "blue circle"


def draw_scenes(n: int, size: int, seed: int = 0) -> tuple[list[Image.Image], list[list[list[int]]]]:
    """n images, each with one red square and one blue circle (size/5..size/3 px, not overlapping)."""
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for _ in range(n):
        im = Image.new("RGB", (size, size), (235, 235, 235))
        pen = ImageDraw.Draw(im)
        placed: list[list[int]] = []
        for shape in ("square", "circle"):
            while True:
                s = int(rng.integers(size // 5, size // 3))
                x, y = int(rng.integers(0, size - s)), int(rng.integers(0, size - s))
                box = [x, y, x + s - 1, y + s - 1]  # legacy xyxy: width x2 - x1 + 1 = s
                if not placed or box_iou(torch.tensor([box], dtype=torch.float),
                                         torch.tensor(placed, dtype=torch.float)).max() == 0:
                    break
            if shape == "square":
                pen.rectangle(box, fill=(220, 30, 30))
            else:
                pen.ellipse(box, fill=(30, 70, 230))
            placed.append(box)
        images.append(im)
        boxes.append(placed)
    return images, boxes


@pytest.mark.slow
def test_glip_synth_overfits_a_handful_of_drawn_images():
    torch.manual_seed(0)
    model = GLIP(glip_synth())
    images, boxes = draw_scenes(4, model.config.min_size)
    pm = positive_map(model.tokenizer, CAPTION, SPANS, max_len=model.config.max_query_len)  # [2, 256]
    targets = [TrainTarget(torch.tensor(b, dtype=torch.float), pm.clone()) for b in boxes]  # row p = phrase p
    batch = model.preprocess(images)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, weight_decay=1e-4)
    model.train()
    history = []
    for _ in range(70):
        losses = model(batch, [CAPTION] * len(images), targets)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    first, last = history[0], history[-1]
    assert sum(last.values()) < 0.5 * sum(first.values()), (first, last)
    assert last["loss_token"] < 0.1 * first["loss_token"], (first, last)
    assert last["loss_reg"] < 0.8 * first["loss_reg"], (first, last)

    model.eval()
    for im, gt in zip(images, boxes):
        dets = model.predict(im, (CAPTION, SPANS))
        for phrase in (0, 1):
            mine = dets.labels == phrase
            assert mine.any(), f"no detection for phrase {phrase}"
            top = dets.boxes_xyxy[mine][0]  # highest score of this phrase
            iou = box_iou(top[None], torch.tensor([gt[phrase]], dtype=torch.float))[0, 0].item()
            assert iou > 0.5, (phrase, top.tolist(), gt[phrase], iou)
