"""Fine-tuning a text-answering model on the detect format: each image's boxes written as the answer.

PaliGemma's authors transfer it to detection this way: the prefix is the detect prompt, the suffix the
answer in its own format (`<locYYYY><locXXXX><locYYYY><locXXXX> label` objects joined by " ; "), and
transformers' PaliGemmaForConditionalGeneration gives the language-model loss on the suffix tokens
(the processor's `suffix` argument builds the labels, prefix tokens masked). Objects are written in the
annotation file's order; a flipped image has its boxes flipped.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch


class AnswerTrainSet(torch.utils.data.Dataset):
    """Images of a detection split with boxes of the prompt's classes, each with its answer text."""

    def __init__(self, dataset: Any, category_ids: Sequence[int], entries: Sequence[str], prompt: str,
                 loaded: Any, *, seed: int, flip_prob: float = 0.5) -> None:
        self.dataset = dataset
        self.names = {c: e.strip() for c, e in zip(category_ids, entries)}
        self.prompt = prompt
        self.loaded = loaded
        self.flip_prob = flip_prob
        self.rng = random.Random(seed)
        self.image_ids = [i for i in dataset.image_ids if any(c in self.names for c in dataset.category_ids(i))]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int) -> tuple[Any, str]:
        """(PIL image, answer text), flipped with probability flip_prob."""
        from PIL import Image

        image_id = self.image_ids[i]
        image = self.dataset.load_image(image_id).convert("RGB")
        width, height = image.size
        objects = [(self.names[c], b) for b, c in zip(self.dataset.boxes_xyxy(image_id).tolist(),
                                                      self.dataset.category_ids(image_id)) if c in self.names]
        if self.rng.random() < self.flip_prob:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            objects = [(n, (width - x2, y1, width - x1, y2)) for n, (x1, y1, x2, y2) in objects]
        return image, self.loaded.family.format_answer(objects, width, height)

    def batch(self, samples: Sequence[tuple[Any, str]], device: str) -> tuple[tuple[()], dict[str, Any]]:
        """The model's forward arguments (bench.runs.train's train-view protocol): keyword inputs with the
        prefix (the prompt) and suffix (the answer) per image, labels on the suffix tokens."""
        text = [self.loaded.family.processor_text(self.prompt)] * len(samples)
        batch = self.loaded.processor(text=text, images=[s[0] for s in samples], suffix=[s[1] for s in samples],
                                      return_tensors="pt", padding="longest")
        return (), {k: v.to(device) for k, v in batch.items()}
