"""Detections drawn for people to read: an upscaled copy of the image, labels kept inside the canvas and
placed where they cover neither each other nor other boxes when there is such a place."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 512  # a 128-px synthetic image drawn as is leaves no room for a readable label
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]
Box = tuple[float, float, float, float]


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _clamp(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    x = min(max(x, 0.0), max(width - w, 0.0))
    y = min(max(y, 0.0), max(height - h, 0.0))
    return (x, y, x + w, y + h)


def place_labels(boxes: Sequence[Box], sizes: Sequence[tuple[float, float]], width: int, height: int) -> list[Box]:
    """One label rectangle per box, inside the width x height canvas.

    Candidates: above the box, below it, inside its top and bottom edges, each left- or right-aligned.
    Each label (in the given order, best detection first) takes the candidate that overlaps the labels
    already placed least (weighted 10x, since overlapping text is unreadable), then the other boxes least."""
    placed: list[Box] = []
    for i, ((x1, y1, x2, y2), (w, h)) in enumerate(zip(boxes, sizes)):
        candidates = [_clamp(x, y, w, h, width, height)
                      for y in (y1 - h, y2, y1, y2 - h) for x in (x1, x2 - w)]
        others = [b for j, b in enumerate(boxes) if j != i]

        def cost(c: Box, others: list[Box] = others) -> float:
            return 10 * sum(_overlap(c, p) for p in placed) + sum(_overlap(c, b) for b in others)

        placed.append(min(candidates, key=cost))  # min keeps the first of equal costs: above the box first
    return placed


def draw_detections(image: Image.Image, dets: list[dict], path: str | Path, min_side: int = MIN_SIDE) -> float:
    """Boxes with 'phrase score' labels on a copy of `image` upscaled to at least `min_side` pixels on its
    short side, saved as PNG; returns the scale (the detections stay in original pixels)."""
    scale = max(1.0, min_side / min(image.width, image.height))
    canvas = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)),
                                         Image.Resampling.LANCZOS)
    pen = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(12, round(min(canvas.size) / 40)))
    boxes = [tuple(v * scale for v in d["box_xyxy"]) for d in dets]
    texts = [f"{d['phrase']} {d['score']:.2f}" for d in dets]
    pad = 2
    sizes = []
    for text in texts:
        left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
        sizes.append((right - left + 2 * pad, bottom - top + 2 * pad))
    labels = place_labels(boxes, sizes, canvas.width, canvas.height)
    width = max(2, round(min(canvas.size) / 200))
    for d, box in zip(dets, boxes):
        pen.rectangle(box, outline=PALETTE[d["label"] % len(PALETTE)], width=width)
    for d, text, (lx1, ly1, lx2, ly2) in zip(dets, texts, labels):  # labels last: on top of every box
        pen.rectangle((lx1, ly1, lx2, ly2), fill=PALETTE[d["label"] % len(PALETTE)])
        left, top, _, _ = pen.textbbox((0, 0), text, font=font)
        pen.text((lx1 + pad - left, ly1 + pad - top), text, fill="white", font=font)
    canvas.save(path, format="PNG")
    return scale
