"""Scenes: objects placed without overlap on a textured background, with exact boxes.

A scene is sampled from a `ScenePlan` (which colour-shape pairs may appear, how many objects, which
sizes) with a numpy Generator, so one seed gives one scene. Objects never overlap (their drawing
regions are kept `gap` pixels apart), so every object is fully visible and its box is tight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.synthetic.concepts import COLOURS, SIZES
from bench.synthetic.draw import background, mask_box, shape_mask

IMAGE_SIZE = 128


@dataclass(frozen=True)
class SceneObject:
    """One drawn object. bbox: COCO xywh, pixel-inclusive (w = x2 - x1 + 1); area: mask pixel count."""

    colour: str
    shape: str
    size: str
    bbox: tuple[int, int, int, int]
    area: int
    target: bool  # drawn from the plan's targets (True) or its distractors (False)

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        """Legacy inclusive corners [x1, y1, x2, y2] (x2 = x + w - 1)."""
        x, y, w, h = self.bbox
        return (x, y, x + w - 1, y + h - 1)

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.xyxy
        return ((x1 + x2) / 2, (y1 + y2) / 2)


@dataclass(frozen=True)
class ScenePlan:
    """What a scene may contain. targets/distractors: colour-shape pairs, drawn uniformly with weights.

    distractor_prob: chance that an object is drawn from `distractors` (when there are any).
    min_targets: at least this many target objects are attempted first (so most images are useful).
    """

    targets: tuple[tuple[str, str], ...]
    num_objects: tuple[int, int]
    sizes: tuple[str, ...] = ("small", "large")
    distractors: tuple[tuple[str, str], ...] = ()
    distractor_prob: float = 0.0
    target_weights: tuple[float, ...] | None = None
    min_targets: int = 1
    gap: int = 3


@dataclass
class Scene:
    image: np.ndarray  # [H, W, 3] uint8 RGB
    objects: list[SceneObject]


def sample_scene(plan: ScenePlan, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Scene:
    """Draw one scene: background, then each object (placed by rejection sampling) as a flat colour."""
    img = background(rng, size, size)
    n = int(rng.integers(plan.num_objects[0], plan.num_objects[1] + 1))
    weights = None
    if plan.target_weights is not None:
        weights = np.asarray(plan.target_weights, dtype=np.float64)
        weights = weights / weights.sum()
    regions: list[tuple[int, int, int, int]] = []  # placed drawing regions (x0, y0, w, h)
    objects: list[SceneObject] = []
    for i in range(n):
        is_target = i < plan.min_targets or not plan.distractors or rng.random() >= plan.distractor_prob
        pool = plan.targets if is_target else plan.distractors
        k = int(rng.choice(len(pool), p=weights if is_target else None))
        colour, shape = pool[k]
        size_name = plan.sizes[int(rng.integers(len(plan.sizes)))]
        lo, hi = SIZES[size_name]
        side = int(rng.integers(lo, hi + 1))
        w = max(lo, min(hi, int(round(side * rng.uniform(0.88, 1.12)))))
        h = side
        region = _place(rng, w, h, size, regions, plan.gap)
        if region is None:  # crowded: no free spot for this one
            continue
        x0, y0 = region[0], region[1]
        mask = shape_mask(shape, w, h)  # [h, w] local to the region
        local = mask_box(mask)
        if local is None:
            raise AssertionError(f"empty mask for {shape} of size {w}x{h}")
        img[y0:y0 + h, x0:x0 + w][mask] = COLOURS[colour]
        box = (local[0] + x0, local[1] + y0, local[2], local[3])
        regions.append(region)
        objects.append(SceneObject(colour, shape, size_name, box, int(mask.sum()), is_target))
    return Scene(img, objects)


def _place(
    rng: np.random.Generator, w: int, h: int, size: int, regions: list[tuple[int, int, int, int]], gap: int
) -> tuple[int, int, int, int] | None:
    """A free region (x0, y0, w, h) inside the image with `gap` px to every placed region, or None."""
    for _ in range(40):
        x0 = int(rng.integers(1, size - w))
        y0 = int(rng.integers(1, size - h))
        if all(
            x0 + w + gap <= rx or rx + rw + gap <= x0 or y0 + h + gap <= ry or ry + rh + gap <= y0
            for rx, ry, rw, rh in regions
        ):
            return (x0, y0, w, h)
    return None
