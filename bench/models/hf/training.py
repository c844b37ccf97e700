"""Training samples for transformers' detectors: a detection split under one class caption (Grounding DINO's
family), under a sampled caption per image (SampledCaptionSet: tasks with a train_prompt, OV-LVIS), or
labelled by classifier column (the closed-set detectors, bench.models.hf.closed_set).

transformers computes the loss itself from `labels`: per image, the class index of each box (its phrase
in the caption, which the model finds between the "." delimiters) and the box as normalised
(cx, cy, w, h). `batch` turns samples into the model's keyword inputs (the train-view protocol of
bench.runs.train, as bench.data.training.GroundingBatches does for GLIP).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from bench.util.errors import UserError


class CaptionTrainSet(torch.utils.data.Dataset):
    """Images with boxes of a detection split; boxes labelled by their category's place in the caption."""

    def __init__(self, dataset: Any, category_ids: Sequence[int], text: dict[str, torch.Tensor],
                 image_processor: Any, *, seed: int, flip_prob: float = 0.5,
                 columns: Mapping[int, int] | None = None) -> None:
        """columns: the class index of each category id (default: its place in category_ids; a closed-set
        detector's classifier column)."""
        self.dataset = dataset
        self.index = dict(columns) if columns is not None else {c: i for i, c in enumerate(category_ids)}
        self.text = text
        self.image_processor = image_processor
        self.flip_prob = flip_prob
        self.rng = random.Random(seed)
        self.image_ids = [i for i in dataset.image_ids if any(c in self.index for c in dataset.category_ids(i))]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(PIL image, [N, 4] normalised cxcywh, [N] class indices), flipped with probability flip_prob."""
        return self._sample(self.image_ids[i], self.index)

    def _sample(self, image_id: int, index: Mapping[int, int]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """The image and its boxes of the categories in `index` (category id -> class index), maybe flipped."""
        from PIL import Image

        image = self.dataset.load_image(image_id)
        width, height = image.size
        pairs = [(b, index[c]) for b, c in zip(self.dataset.boxes_xywh(image_id).tolist(),
                                               self.dataset.category_ids(image_id)) if c in index]
        # continuous COCO boxes, no legacy +1 (transformers' and Grounding DINO's own loaders read them so)
        x, y, w, h = torch.tensor([b for b, _ in pairs], dtype=torch.float32).reshape(-1, 4).unbind(-1)
        x1, x2 = x, x + w
        if self.rng.random() < self.flip_prob:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            x1, x2 = width - x2, width - x1  # the exact mirror of a continuous box
        x1, x2 = (x1 / width).clamp(0, 1), (x2 / width).clamp(0, 1)
        y1, y2 = (y / height).clamp(0, 1), ((y + h) / height).clamp(0, 1)
        cxcywh = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)  # [N, 4] normalised
        return image, cxcywh, torch.tensor([c for _, c in pairs], dtype=torch.long)

    def batch(self, samples: Sequence[tuple[Any, torch.Tensor, torch.Tensor]], device: str
              ) -> tuple[tuple[()], dict[str, Any]]:
        """The model's keyword inputs for a batch: pixels (padded, with their mask), the caption per image, labels."""
        pixels = self.image_processor(images=[s[0] for s in samples], return_tensors="pt")
        n = len(samples)
        inputs = {k: pixels[k].to(device) for k in ("pixel_values", "pixel_mask") if k in pixels}
        inputs.update({k: v.expand(n, -1).to(device) for k, v in self.text.items()})
        inputs["labels"] = [{"class_labels": c.to(device), "boxes": b.to(device)} for _, b, c in samples]
        return (), inputs


class SampledCaptionSet(CaptionTrainSet):
    """A detection split with each image under its own sampled caption (bench.data.od_captions): its classes
    plus sampled negatives in Grounding DINO's "a. b." form; a box's class index is its class's phrase in
    that caption, and boxes of a class that did not fit are left out (as GLIP's SampledCaptionTrainSet).

    The captions come from the sampler's own seeded generator, the flips from `seed`, so neither moves the
    other. Batches carry one caption per image, padded to the longest; transformers' loss must then take
    each image's phrases from its own caption (bench.models.hf.grounding_loss).
    """

    def __init__(self, dataset: Any, sampler: Any, tokenizer: Any, image_processor: Any, *, seed: int,
                 flip_prob: float = 0.5) -> None:
        super().__init__(dataset, sampler.ids, {}, image_processor, seed=seed, flip_prob=flip_prob)
        self.sampler = sampler  # its record() is the run's provenance.train_prompt
        self.tokenizer = tokenizer

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor, torch.Tensor, dict[str, list[int]]]:
        """(PIL image, [N, 4] normalised cxcywh, [N] phrase indices in its caption, the caption's tokens)."""
        image_id = self.image_ids[i]
        drawn = self.sampler.sample(self.dataset.category_ids(image_id))
        image, boxes, labels = self._sample(image_id, {c: k for k, c in enumerate(drawn.category_ids)})
        # the caption ends with "." as the evaluation captions do (bench.models.hf.prompts.make_caption)
        return image, boxes, labels, dict(self.tokenizer(drawn.caption + "."))

    def batch(self, samples: Sequence[tuple[Any, ...]], device: str) -> tuple[tuple[()], dict[str, Any]]:
        """The model's keyword inputs: pixels (padded, with their mask), each image's caption tokens padded to
        the batch's longest ([B, L] input_ids, attention_mask, token_type_ids), labels."""
        inputs = dict(super().batch([s[:3] for s in samples], device)[1])
        text = self.tokenizer.pad([s[3] for s in samples], return_tensors="pt")
        inputs.update({k: v.to(device) for k, v in text.items()})
        return (), inputs


def check_phrase_entries(entries: Mapping[int, tuple[str, str, str]], tokenizer: Any, delimiters: set[int]) -> None:
    """Refuse class entries that transformers' Grounding DINO would not read as exactly one phrase: it splits a
    caption at the `delimiters` ids ([CLS], [SEP], ".", "?"), so an entry holding one (or no token at all)
    would shift every later phrase of a caption off its class."""
    bad = [prefix + name + suffix for prefix, name, suffix in entries.values()
           if not (ids := tokenizer(prefix + name + suffix, add_special_tokens=False)["input_ids"])
           or delimiters & set(ids)]
    if bad:
        raise UserError(f"{len(bad)} class prompts cannot be phrases of a Grounding DINO training caption (they hold "
                        f"'.' or '?', which its loss reads as a phrase boundary, or no token), e.g. {bad[:3]}; "
                        "rename them in the task's prompt set")
