"""Pixels of the synthetic world: mild textured backgrounds and flat-coloured shapes.

Every shape is drawn as a binary mask (PIL, no anti-aliasing) and the object's box is read back
from the mask, so boxes are exact by construction. Objects are flat colours from concepts.COLOURS;
backgrounds are muted (low saturation, mid brightness) so no background pixel equals an object colour.

Box convention: pixel-inclusive, the official GLIP +1 convention (official
maskrcnn_benchmark/structures/bounding_box.py, TO_REMOVE). An object
covering pixel columns x1..x2 and rows y1..y2 (inclusive) gets COCO xywh [x1, y1, x2 - x1 + 1,
y2 - y1 + 1]; its legacy xyxy is [x1, y1, x2, y2].
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from bench.synthetic.concepts import SHAPES


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted textured background [H, W, 3] uint8: gradient, smooth noise or stripes, plus grain."""
    base = _muted_colour(rng)
    other = _muted_colour(rng)
    kind = int(rng.integers(3))
    yy, xx = _grid(height, width)
    if kind == 0:  # linear gradient between two muted colours
        angle = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    elif kind == 1:  # smooth value noise: a coarse random grid upsampled bilinearly
        cells = int(rng.integers(3, 7))
        coarse = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
        t = np.asarray(coarse.resize((width, height), Image.BILINEAR), dtype=np.float32) * np.float32(1 / 255)
    else:  # soft stripes
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(10, 30)
        t = 0.5 + 0.5 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * np.float32(2 * math.pi / period))
    grain = (rng.random((height, width), dtype=np.float32) - np.float32(0.5)) * np.float32(12.0)  # grey grain
    # per channel then stacked to [H, W, 3] (faster than broadcasting against a trailing axis of 3)
    img = np.stack([t * (other[c] - base[c]) + (base[c] + grain) for c in range(3)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates [H, W] float32 (cached: read-only)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation colour of brightness 95-175 (far from black 12, white 250 and saturated hues)."""
    grey = rng.uniform(95, 175)
    tint = rng.uniform(-18, 18, size=3)
    return np.clip(grey + tint, 80, 190).astype(np.float32)


def shape_mask(shape: str, width: int, height: int) -> np.ndarray:
    """Binary mask [height, width] bool of `shape` drawn to fill a width x height region.

    The caller pastes it at the region's offset; the tight box is computed from the mask by `mask_box`,
    never assumed from the region (a triangle or star does not touch every side at every size).
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known shapes: {', '.join(SHAPES)}")
    w, h = width, height
    x0, y0, x1, y1 = 0, 0, w - 1, h - 1  # inclusive corners
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = Image.new("L", (width, height), 0)
    d = ImageDraw.Draw(m)

    def poly(points: list[tuple[float, float]]) -> None:
        d.polygon([(round(px), round(py)) for px, py in points], fill=255)

    def regular(n: int, phase: float, rx: float, ry: float) -> list[tuple[float, float]]:
        return [(cx + rx * math.cos(phase + 2 * math.pi * k / n), cy + ry * math.sin(phase + 2 * math.pi * k / n))
                for k in range(n)]

    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    if shape == "circle":
        d.ellipse([x0, y0, x1, y1], fill=255)
    elif shape == "square":
        d.rectangle([x0, y0, x1, y1], fill=255)
    elif shape == "triangle":
        poly([(cx, y0), (x1, y1), (x0, y1)])
    elif shape == "diamond":
        poly([(cx, y0), (x1, cy), (cx, y1), (x0, cy)])
    elif shape == "star":
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.45
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((cx + rx * r * math.cos(a), cy + ry * r * math.sin(a)))
        poly(pts)
    elif shape == "ring":
        d.ellipse([x0, y0, x1, y1], fill=255)
        tx, ty = 0.28 * w, 0.28 * h  # ring thickness ~28% of the size: stays visible at 15 px
        d.ellipse([x0 + tx, y0 + ty, x1 - tx, y1 - ty], fill=0)
    elif shape == "cross":
        tx, ty = 0.32 * w, 0.32 * h
        d.rectangle([round(cx - tx / 2), y0, round(cx + tx / 2), y1], fill=255)
        d.rectangle([x0, round(cy - ty / 2), x1, round(cy + ty / 2)], fill=255)
    elif shape == "heart":
        r = 0.27 * w
        for sx in (-1, 1):  # two lobes
            lx = cx + sx * (rx - r)
            d.ellipse([lx - r, y0, lx + r, y0 + 2 * r * h / w], fill=255)
        poly([(x0, y0 + r * h / w), (x1, y0 + r * h / w), (cx, y1)])
    elif shape == "hexagon":
        poly(regular(6, 0.0, rx, ry))
    elif shape == "crescent":
        d.ellipse([x0, y0, x1, y1], fill=255)
        off = 0.38 * w
        d.ellipse([x0 + off, y0 - 0.05 * h, x1 + off, y1 - 0.05 * h], fill=0)
    elif shape == "arrow":  # pointing right: shaft + head
        sh = 0.18 * h
        head_x = x0 + 0.5 * w
        d.rectangle([x0, round(cy - sh), round(head_x), round(cy + sh)], fill=255)
        poly([(head_x, y0), (x1, cy), (head_x, y1)])
    elif shape == "hourglass":
        neck = 0.08 * w
        poly([(x0, y0), (x1, y0), (cx + neck, cy), (x1, y1), (x0, y1), (cx - neck, cy)])
    return np.asarray(m) > 0


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight pixel-inclusive COCO box [x, y, w, h] of a mask (w = x2 - x1 + 1); None when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0:
        return None
    x1, x2, y1, y2 = int(xs[0]), int(xs[-1]), int(ys[0]), int(ys[-1])
    return (x1, y1, x2 - x1 + 1, y2 - y1 + 1)
