"""Small training inputs shared by the training tests."""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image

from bench.data.training import SampleList, TrainInput, make_sample


def tiny_detection_samples(model, n: int = 2, seed: int = 0) -> SampleList:
    """A train view of `n` TrainSamples of coloured boxes under the caption 'red square. blue circle'."""
    from glip.prompts import build_prompt_chunks

    rng = np.random.default_rng(seed)
    chunk = build_prompt_chunks(model.tokenizer, ["red square", "blue circle"])[0]
    # the test scale of the model, no flip: the samples are its inference pixels
    pipeline = TrainInput((model.config.min_size,), model.config.max_size, 0.0, tuple(model.config.pixel_mean),
                          tuple(model.config.pixel_std))
    out = []
    for i in range(n):
        arr = np.full((64, 80, 3), 120, dtype=np.uint8)
        x, y = int(rng.integers(0, 40)), int(rng.integers(0, 30))
        arr[y: y + 24, x: x + 30] = (220, 30, 30) if i % 2 == 0 else (30, 30, 220)
        boxes = torch.tensor([[x, y, x + 29, y + 23]], dtype=torch.float32)
        out.append(make_sample(Image.fromarray(arr), boxes, chunk.positive_map[i % 2: i % 2 + 1], chunk.caption,
                               pipeline, random.Random(seed)))
    return SampleList(out, model.config.size_divisibility)
