"""`Sam3Adapter`: transformers' SAM 3 (Sam3Model, or Sam3LiteTextModel) as a zero-shot detector.

SAM 3 takes one text concept per forward pass and returns every instance of it (queries with a box, a
mask and a score). For a task's class prompt that is one forward per class; what does not depend on the
class is computed once:

    text = model.get_text_features(ids of class c)            # once per class, for the whole split
    for batch in images:                                       # B images, all given the same prompts
        vision = model.get_vision_features(pixels)             # once per image: the ViT + FPN
        for chunk in chunks: for c in chunk:                   # one concept per forward, B images at once
            out = model(vision_embeds=vision, text_embeds=text[c] expanded to B, attention_mask=...)
            scores [B, Q] = sigmoid(out.pred_logits) * sigmoid(out.presence_logits); boxes [B, Q, 4]
        per image, per chunk: the top `per_chunk_cap` (class, query) pairs; chunks merged (merge_chunks)

which gives the detections of `model(pixel_values, input_ids)` per class (tests/bench/models/test_sam3.py).
Masks (out.pred_masks) are not scored; `detect_instances` keeps them with their boxes for a later mask AP.
Pre- and post-processing: bench.models.sam3.processing (the processor's arithmetic, without torchvision).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.models.base import DetectSettings, merge_chunks
from bench.models.hf.outputs import coco_rows
from bench.models.sam3 import processing

GROUP_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("language", ("text_encoder", "text_projection")),
    ("backbone", ("vision_encoder",)),
    ("head", ("detr_decoder", "dot_product_scoring", "mask_decoder")),
)


@dataclass
class Loaded:
    """A loaded SAM 3: the torch model, its tokenizer and what decides its input pixels."""

    folder: Path
    model: Any
    tokenizer: Any
    pixels: processing.PixelSettings


class Sam3Module(nn.Module):
    """The module the harness holds (parameters, groups); SAM 3 does not train here."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, **inputs: Any) -> Any:
        return self.model(**inputs)


@dataclass(frozen=True)
class TextPrompt:
    """One class's tokenized concept: input_ids / attention_mask [1, 32] and its text features."""

    attention_mask: torch.Tensor
    features: Any  # BaseModelOutputWithPooling: pooler_output [1, 32, D]


class Sam3Adapter:
    """Zero-shot detection on every detection task; grounding and training refused (Sam3Family.refusal)."""

    size_divisibility = 0  # nothing trains

    def __init__(self, loaded: Loaded, family: str) -> None:
        self.loaded = loaded
        self.family = family
        self.module = Sam3Module(loaded.model)
        self.truncated: list[str] = []
        self.batch_size = 1
        self.autocast: str | None = None

    # ------------------------------------------------------------------ protocol
    def refuses(self, regime: str) -> str | None:
        from bench.models.families.sam3 import refusal

        return refusal(self.family, regime, "detection")

    def parameter_groups(self) -> Mapping[str, list[str]]:
        groups: dict[str, list[str]] = {g: [] for g, _ in GROUP_MARKERS} | {"fusion": []}
        for name, _ in self.module.named_parameters():
            group = next((g for g, marks in GROUP_MARKERS if any(m in name for m in marks)), "fusion")
            groups[group].append(name)
        return groups

    def prompt_chunks(self, task: Any, dataset: Any, prompt_set: str) -> list[tuple[Any, list[int]]]:
        from bench.models.hf.prompts import query_chunks

        return query_chunks(task, dataset, prompt_set)  # one concept (entry) per class, the task's chunks

    def detect_images(self, dataset: Any, chunks: Sequence[tuple[Any, list[int]]], settings: DetectSettings, *,
                      image_ids: Sequence[int] | None = None, timer: Any = None) -> Iterator[tuple[int, np.ndarray]]:
        self.batch_size = settings.batch_size
        self.autocast = None if settings.autocast_dtype is None else str(settings.autocast_dtype)
        for image_id, inst in self.detect_instances(dataset, chunks, settings, image_ids=image_ids, timer=timer,
                                                    masks=False):
            yield image_id, coco_rows(image_id, inst["boxes"], inst["scores"], inst["category_ids"])

    def detect_instances(self, dataset: Any, chunks: Sequence[tuple[Any, list[int]]], settings: DetectSettings, *,
                         image_ids: Sequence[int] | None = None, timer: Any = None, masks: bool = True
                         ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """Per image as its batch finishes: boxes [K, 4] xyxy pixels, scores [K], category_ids [K] and (masks)
        the kept instances' mask logits [K, h, w] at the model's mask resolution."""
        device = settings.device
        self.module.to(device).eval()
        ids = list(image_ids if image_ids is not None else dataset.image_ids)
        texts = [[self._text(entry, settings, timer) for entry in chunk.entries] for chunk, _ in chunks]
        for start in range(0, len(ids), settings.batch_size):
            batch = ids[start:start + settings.batch_size]
            images = [dataset.load_image(i) for i in batch]
            pixels = processing.pixel_values(images, self.loaded.pixels).to(device)  # [B, 3, H, W]
            with self._context(settings, timer, "vision"):
                vision = self.loaded.model.get_vision_features(pixel_values=pixels)
            parts: list[list[tuple]] = [[] for _ in batch]
            for (_, cat_ids), chunk_texts in zip(chunks, texts):
                per_class = [self._concept(vision, text, len(batch), settings, timer, masks) for text in chunk_texts]
                for j, image in enumerate(images):
                    parts[j].append(self._top(per_class, j, cat_ids, image.size, settings.per_chunk_cap))
            for j, image_id in enumerate(batch):
                yield image_id, self._merge(parts[j], settings.per_image_cap)

    def ground(self, dataset: Any, settings: DetectSettings, *, sample_ids: Sequence[int] | None = None,
               timer: Any = None) -> list[dict[str, Any]]:
        raise ValueError(refusal_text(self.family, "grounding"))

    def training_set(self, dataset: Any, chunk: tuple[Any, list[int]], seed: int) -> Any:
        raise ValueError(refusal_text(self.family, "full-ft"))

    def record_fields(self, trains: bool) -> dict[str, Any]:
        from bench.models.hf.loading import weights_file

        return {"model": {"family": self.family, "checkpoint": str(weights_file(self.loaded.folder))},
                "provenance": {"model_limits": self.limits()}}

    def limits(self) -> dict[str, Any]:
        """The model-side settings a run used, for its record."""
        return {"family": self.family, "model_class": type(self.loaded.model).__name__,
                "image_processor": "Sam3ImageProcessor arithmetic (bench.models.sam3.processing)",
                "pixels": self.loaded.pixels.as_dict(), "text_input": "one concept per forward",
                "max_text_len": processing.TEXT_LENGTH, "score_threshold": 0.0,
                "scoring": "sigmoid(logit) x sigmoid(presence); top (class, query) pairs", "nms_iou": None,
                "box_clipping": False, "infer_batch_size": self.batch_size, "autocast": self.autocast,
                "truncated_queries": sorted(set(self.truncated))}

    # ------------------------------------------------------------------ steps
    @staticmethod
    @contextmanager
    def _context(settings: DetectSettings, timer: Any, what: str) -> Iterator[None]:
        """no_grad, the run's autocast, and the timer around one model call."""
        dtype = settings.autocast_dtype
        amp = torch.autocast(torch.device(settings.device).type, dtype=dtype) if dtype is not None else nullcontext()
        with torch.no_grad(), amp, (timer.time(what, settings.device) if timer is not None else nullcontext()):
            yield

    def _text(self, entry: str, settings: DetectSettings, timer: Any) -> TextPrompt:
        """One concept tokenized as Sam3Processor does (padded to 32 tokens) and encoded once."""
        tok = self.loaded.tokenizer([entry], padding="max_length", max_length=processing.TEXT_LENGTH,
                                    truncation=True, return_tensors="pt")
        if len(self.loaded.tokenizer(entry)["input_ids"]) > processing.TEXT_LENGTH:
            self.truncated.append(entry)
        ids, mask = tok["input_ids"].to(settings.device), tok["attention_mask"].to(settings.device)
        with self._context(settings, timer, "text"):
            features = self.loaded.model.get_text_features(input_ids=ids, attention_mask=mask)
        return TextPrompt(mask, features)

    def _concept(self, vision: Any, text: TextPrompt, b: int, settings: DetectSettings, timer: Any,
                 masks: bool) -> dict[str, torch.Tensor]:
        """One concept on the batch's B images: scores [B, Q], boxes [B, Q, 4] in [0, 1] (masks [B, Q, h, w])."""
        features = copy.copy(text.features)  # the cached [1, T, D] features, seen by the B images of the batch
        features.pooler_output = text.features.pooler_output.expand(b, -1, -1)
        with self._context(settings, timer, "head"):
            out = self.loaded.model(vision_embeds=vision, text_embeds=features,
                                    attention_mask=text.attention_mask.expand(b, -1))
        got = {"logits": out.pred_logits.float().cpu(), "boxes": out.pred_boxes.float().cpu(),
               "presence": None if out.presence_logits is None else out.presence_logits.float().cpu()}
        if masks:
            got["masks"] = out.pred_masks.float().cpu()
        return got

    def _top(self, per_class: list[dict[str, torch.Tensor]], j: int, cat_ids: Sequence[int], size: tuple[int, int],
             cap: int) -> tuple[torch.Tensor, ...]:
        """Image j's top `cap` (class, query) pairs of one chunk: boxes [K, 4] pixels, scores, category ids, index."""
        width, height = size
        scored = [processing.detections(o["logits"][j], o["boxes"][j],
                                        None if o["presence"] is None else o["presence"][j], height, width)
                  for o in per_class]
        scores = torch.stack([s for s, _ in scored])  # [C, Q]
        boxes = torch.stack([b for _, b in scored])  # [C, Q, 4]
        flat = scores.reshape(-1)
        top, idx = flat.topk(min(cap, flat.numel()))
        order = torch.argsort(top, descending=True, stable=True)
        top, idx = top[order], idx[order]
        q = scores.shape[1]
        cats = torch.as_tensor(list(cat_ids))[idx // q]
        mask = (torch.stack([o["masks"][j] for o in per_class]).flatten(0, 1)[idx] if "masks" in per_class[0]
                else None)
        return boxes.reshape(-1, 4)[idx], top, cats, mask

    @staticmethod
    def _merge(parts: list[tuple], cap: int | None) -> dict[str, torch.Tensor]:
        boxes, scores, cats = merge_chunks([p[:3] for p in parts], cap)
        merged = {"boxes": boxes, "scores": scores, "category_ids": cats}
        if parts and parts[0][3] is not None:
            all_masks = torch.cat([p[3] for p in parts])
            order = torch.argsort(torch.cat([p[1] for p in parts]), descending=True, stable=True)
            merged["masks"] = all_masks[order[:cap] if cap is not None else order]
        return merged


def refusal_text(family: str, regime_or_kind: str) -> str:
    from bench.models.families.sam3 import refusal

    kind = "grounding" if regime_or_kind == "grounding" else "detection"
    return refusal(family, "zero-shot" if kind == "grounding" else regime_or_kind, kind) or ""
