"""`HFAdapter`: a transformers zero-shot detector behind the harness's DetectorAdapter protocol.

One forward pass per (image batch, prompt chunk): Grounding DINO's text attends over the image, so
nothing is cached across chunks; caption families run batch 1 (their processor pads images, which moves the
numbers), the families whose processor resizes every image to one size (OWL, OmDet-Turbo) batch images
that share the prompts. Under OWL's protocol=published (prompt-template ensembling, bench.models.hf.ensemble)
the class queries are embedded once per run and the images once per batch for every chunk. The settings
the run used (chunks, caps, text limits, truncated queries, scoring) are in `limits()` for the record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.models.base import DetectSettings, grounding_entry, merge_chunks
from bench.models.hf import ensemble, outputs, prompts
from bench.models.hf.loading import Loaded, weights_file

# parameter groups by name: the first group whose marker occurs in a parameter's name; the rest is "fusion"
GROUP_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("language", ("text_backbone", "text_model", "text_projection", "language_backbone", "task_encoder",
                  "text_embed")),
    ("backbone", ("backbone", "vision_model", "visual_projection")),
    ("fpn", ("input_proj", "encoder_input_proj", "channel_projection")),
    ("head", ("class_embed", "bbox_embed", "class_head", "box_head", "objectness_head", "enc_output",
              "decoder.class", "decoder.bbox")),
)


TRAIN_FLIP_PROB = 0.5  # horizontal flips while fine-tuning, as GLIP's default flip_prob


class HFDetector(nn.Module):
    """The module that trains and is saved: the transformers model, returning its loss as the train loop wants."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, **inputs: Any) -> dict[str, torch.Tensor]:
        return {"loss": self.model(**inputs).loss}

    def parameter_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {g: [] for g, _ in GROUP_MARKERS} | {"fusion": []}
        for name, _ in self.named_parameters():
            group = next((g for g, marks in GROUP_MARKERS if any(m in name for m in marks)), "fusion")
            groups[group].append(name)
        return groups

    def stem_module_names(self) -> list[str]:
        """Nothing is frozen in eval mode: transformers' fine-tuning of these models trains every layer."""
        return []


class HFAdapter:
    """Detection (every family) and phrase grounding (caption families) with a loaded transformers detector."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.family = loaded.family.name
        if loaded.family.text == "caption":  # each image's targets from its own caption (batches > 1 image)
            from bench.models.hf import grounding_loss

            grounding_loss.install(loaded.model)
        self.module = HFDetector(loaded.model)
        self.truncated: list[str] = []  # queries cut at the model's text length
        self.size_divisibility = 0  # unused: the train view batches itself (collate_inputs)
        self.batch_size = 1  # images per forward in the last detect (families that batch)
        self.autocast: str | None = None  # the autocast dtype of the last detect
        self.protocol = "task"  # "published": the family's published settings replace the task's caps
        self.prompt_templates: tuple[str, ...] | None = None  # published OWL: class queries ensembled over these
        self._queries_cache: dict[tuple, torch.Tensor] = {}  # ensembled queries per (chunk, templates, device)

    def set_protocol(self, protocol: str) -> None:
        """"task" or "published" (the family's published settings: caps, and prompt templates where it has them)."""
        self.protocol = protocol
        published = self.loaded.family.published
        templates = published.get("prompt_templates") if protocol == "published" and isinstance(published, Mapping) else None
        self.prompt_templates = tuple(templates) if templates else None

    # ------------------------------------------------------------------ protocol
    def refuses(self, regime: str) -> str | None:
        return refusal(self.loaded.family, regime)

    def parameter_groups(self) -> Mapping[str, list[str]]:
        return self.module.parameter_groups()

    def max_text_len(self) -> int:
        cfg = self.loaded.model.config
        if self.loaded.family.text == "caption":
            return int(cfg.max_text_len)
        return int(cfg.text_config.max_position_embeddings)

    def prompt_chunks(self, task: Any, dataset: Any, prompt_set: str) -> list[tuple[Any, list[int]]]:
        if self.loaded.family.text == "caption":
            return prompts.caption_chunks(task, dataset, prompt_set, self.loaded.tokenizer, self.max_text_len())
        return prompts.query_chunks(task, dataset, prompt_set)

    def detect_images(self, dataset: Any, chunks: Sequence[tuple[Any, list[int]]], settings: DetectSettings, *,
                      image_ids: Sequence[int] | None = None, timer: Any = None) -> Iterator[tuple[int, np.ndarray]]:
        """Per batch of images (batch 1 unless the family `batches`): one forward per prompt chunk, every
        image of the batch given the same prompts."""
        device = settings.device
        self.module.to(device).eval()
        self.batch_size = settings.batch_size if self.loaded.family.batches else 1
        self.autocast = None if settings.autocast_dtype is None else str(settings.autocast_dtype)
        settings = self._protocol_settings(settings)
        texts = [self._chunk_text(chunk, settings, timer) for chunk, _ in chunks]
        ids = list(image_ids if image_ids is not None else dataset.image_ids)
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start:start + self.batch_size]
            images = [dataset.load_image(i) for i in batch]
            pixels = self._pixel_inputs(images)
            parts: list[list[tuple]] = [[] for _ in batch]
            for (_, cat_ids), (_, tmap), out in zip(chunks, texts, self._chunk_outputs(pixels, texts, settings, timer)):
                for j, image in enumerate(images):
                    scores, boxes = self._scores(out, tmap, j)
                    # unclipped until after NMS, as transformers' OmDet-Turbo post-processing orders it
                    # (processing_omdet_turbo.py, _post_process_boxes_for_image: batched_nms, then clip_boxes)
                    boxes = outputs.to_pixels(boxes, self.loaded.family.box_frame, *image.size, clip=False)
                    kept = self._select(scores, boxes, settings.per_chunk_cap)
                    parts[j].append((outputs.clip_to(kept[0], *image.size), kept[1], torch.as_tensor(cat_ids)[kept[2]]))
            for j, image_id in enumerate(batch):
                yield image_id, outputs.coco_rows(image_id, *merge_chunks(parts[j], settings.per_image_cap))

    def ground(self, dataset: Any, settings: DetectSettings, *, sample_ids: Sequence[int] | None = None,
               timer: Any = None) -> list[dict[str, Any]]:
        why = refusal(self.loaded.family, "zero-shot", grounding=True)
        if why:
            raise ValueError(why)
        self.module.to(settings.device).eval()
        preds = []
        for sid in (sample_ids if sample_ids is not None else [s.id for s in dataset.samples]):
            sample = dataset.sample(sid)
            image = dataset.load_image(sid)
            text, tmap = self._caption_inputs(sample.caption, [p.spans for p in sample.phrases])
            out = self._forward({**self._pixel_inputs([image]), **text}, settings, timer)
            scores, boxes = self._scores(out, tmap)
            boxes = outputs.to_pixels(boxes, self.loaded.family.box_frame, *image.size)
            kept = outputs.top_pairs(scores, boxes, settings.per_chunk_cap)
            preds.append(grounding_entry(sid, *kept, num_phrases=len(sample.phrases)))
        return preds

    def _protocol_settings(self, settings: DetectSettings) -> DetectSettings:
        """The task's caps, or under protocol=published the family's published detections per image (also after
        the chunks are merged where the authors keep the top pairs over all classes of an image)."""
        if self.protocol != "published":
            return settings
        published = self.loaded.family.published
        cap = int(published["detections_per_image"])
        whole_image = settings.per_image_cap is not None or bool(published.get("top_k_over_all_classes"))
        return dataclasses.replace(settings, per_chunk_cap=cap, per_image_cap=cap if whole_image else None)

    def _chunk_text(self, chunk: Any, settings: DetectSettings, timer: Any) -> tuple[Any, torch.Tensor | None]:
        """A chunk's text input: the tokens (and caption token map), or under prompt templates the chunk's
        [T, C, d] ensembled query embeddings, computed once per run (cached) rather than per image."""
        if self.prompt_templates is None:
            return self._text_inputs(chunk)
        key = (chunk.entries, self.prompt_templates, str(settings.device), str(settings.autocast_dtype))
        if key not in self._queries_cache:
            tokens = self._queries(ensemble.templated(chunk.entries, self.prompt_templates))
            with self._model_context(settings, timer):
                tokens = {k: v.to(settings.device) for k, v in tokens.items()}
                self._queries_cache[key] = ensemble.text_queries(self.loaded.model, tokens, len(self.prompt_templates))
        return self._queries_cache[key], None

    def _chunk_outputs(self, pixels: dict[str, torch.Tensor], texts: Sequence[tuple[Any, Any]],
                       settings: DetectSettings, timer: Any) -> Iterator[Any]:
        """The model's outputs on one batch of images, per prompt chunk: the full forward per chunk, or under
        prompt templates the images embedded once and the class head run per chunk on its ensembled queries."""
        b = len(pixels["pixel_values"])
        if self.prompt_templates is None:
            for text, _ in texts:
                yield self._forward({**pixels, **self._repeat_text(text, b)}, settings, timer)
            return
        with self._model_context(settings, timer):
            image = ensemble.embed_images(self.loaded.model, pixels["pixel_values"].to(settings.device))
        for queries, _ in texts:
            with self._model_context(settings, timer):
                out = ensemble.classify(self.loaded.model, image, queries)
            yield out

    # ------------------------------------------------------------------ optional: for the record and training
    def limits(self) -> dict[str, Any]:
        """The model-side settings a run used, for its record."""
        fam = self.loaded.family
        return {"family": fam.name, "model_class": type(self.loaded.model).__name__, "text_input": fam.text,
                "max_text_len": self.max_text_len(), "score_threshold": 0.0, "scoring": "top (query, class) pairs",
                "nms_iou": fam.nms_iou, "box_frame": fam.box_frame, "infer_batch_size": self.batch_size,
                "autocast": self.autocast, "image_processor": type(self.loaded.image_processor).__name__,
                "box_clipping": "corners clipped to the image", "protocol": self.protocol,
                "published_settings": self._published_settings(),
                "truncated_queries": sorted(set(self.truncated))}

    def _published_settings(self) -> dict[str, Any] | None:
        """The family's published settings as this run applied them (the templates it used), or None."""
        if self.protocol != "published":
            return None
        settings = dict(self.loaded.family.published)
        if self.prompt_templates is not None:
            settings |= {"prompt_templates": list(self.prompt_templates),
                         "prompt_template_count": len(self.prompt_templates)}
        return settings

    def training_set(self, dataset: Any, chunk: tuple[Any, list[int]], seed: int) -> Any:
        """The protocol's training view: `train_view` under the class prompt's one chunk, flipping as GLIP."""
        return self.train_view(dataset, chunk[0], chunk[1], seed=seed, flip_prob=TRAIN_FLIP_PROB)

    def record_fields(self, trains: bool) -> dict[str, Any]:
        """What a record says of this model beyond GLIP's fields: its family, limits and weights file."""
        return {"model": {"family": self.family, "checkpoint": str(weights_file(self.loaded.folder))},
                "provenance": {"model_limits": self.limits(),
                               "train_flip_prob": TRAIN_FLIP_PROB if trains else None}}

    def sampled_training_set(self, dataset: Any, entries: Mapping[int, tuple[str, str, str]], separator: str,
                             settings: Any, seed: int) -> Any:
        """Caption families: each image under its own sampled caption over `entries` (category id -> prefix,
        name, suffix) within max_text_len - 2 tokens (bench.data.od_captions, as GLIPAdapter's). The caption
        is Grounding DINO's "a. b." whatever the task's `separator` (GLIP's): transformers' loss finds the
        phrases between "." tokens, and the family is evaluated on ". "-joined captions too."""
        from bench.data.od_captions import CaptionSampler
        from bench.models.hf.families import BERT_SPECIAL_IDS
        from bench.models.hf.training import SampledCaptionSet, check_phrase_entries

        if self.loaded.family.text != "caption":
            raise ValueError(f"{self.family} has no caption to sample; only the caption families train on them")
        tokenizer = self.loaded.tokenizer
        check_phrase_entries(entries, tokenizer, set(BERT_SPECIAL_IDS.values()))
        sampler = CaptionSampler(entries, lambda text: len(tokenizer.tokenize(text)), self.max_text_len() - 2,
                                 prompts.SEPARATOR, settings, seed)
        return SampledCaptionSet(dataset, sampler, tokenizer, self.loaded.image_processor, seed=seed,
                                 flip_prob=TRAIN_FLIP_PROB)

    def train_view(self, dataset: Any, chunk: Any, category_ids: Sequence[int], seed: int, flip_prob: float) -> Any:
        """The training samples of a detection split under one caption chunk (caption families only)."""
        from bench.models.hf.training import CaptionTrainSet

        text, _ = self._text_inputs(chunk)
        return CaptionTrainSet(dataset, list(category_ids), text, self.loaded.image_processor, seed=seed,
                               flip_prob=flip_prob)

    # ------------------------------------------------------------------ per family
    def _pixel_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """[B, 3, H, W] pixels (caption families: and their mask); a batch must need no padding."""
        batch = self.loaded.image_processor(images=list(images), return_tensors="pt")
        keys = ("pixel_values", "pixel_mask") if self.loaded.family.text == "caption" else ("pixel_values",)
        if len(images) > 1 and "pixel_mask" in batch and not bool(batch["pixel_mask"].all()):
            raise ValueError(f"{self.family}: its image processor padded the images of a batch; use batch 1")
        return {k: batch[k] for k in keys if k in batch}

    def _repeat_text(self, text: dict[str, torch.Tensor], b: int) -> dict[str, torch.Tensor]:
        """One image's text inputs for a batch of b images with the same prompts.

        OWL: input_ids [b * C, L] (its forward reads b x C queries); OmDet-Turbo: classes [b * C, L], one
        task prompt per image [b, L], classes_structure [b] (C per image), as its processor builds a batch.
        """
        if b == 1:
            return text
        out = {k: v.repeat(b, 1) for k, v in text.items() if k != "classes_structure"}
        if "classes_structure" in text:
            out["classes_structure"] = text["classes_structure"].repeat(b)
        return out

    def _caption_inputs(self, caption: str, spans: Sequence[Sequence[tuple[int, int]]]
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        tok = self.loaded.tokenizer([caption], return_tensors="pt", return_offsets_mapping=True, truncation=True,
                                    max_length=self.max_text_len())
        offsets = tok.pop("offset_mapping")[0].tolist()
        return dict(tok), prompts.token_map(offsets, spans, self.max_text_len())

    def _queries(self, entries: Sequence[str]) -> dict[str, torch.Tensor]:
        n = self.max_text_len()
        tok = self.loaded.tokenizer(list(entries), padding="max_length", max_length=n, truncation=True,
                                    return_tensors="pt")
        full = self.loaded.tokenizer(list(entries))["input_ids"]
        self.truncated += [e for e, ids in zip(entries, full) if len(ids) > n]
        return dict(tok)

    def _text_inputs(self, chunk: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        text = self.loaded.family.text
        if text == "caption":
            return self._caption_inputs(chunk.caption, [[s] for s in chunk.spans])
        q = self._queries(chunk.entries)
        if text == "queries":
            return {"input_ids": q["input_ids"], "attention_mask": q["attention_mask"]}, None
        task = self._queries([f"Detect {', '.join(chunk.entries)}."])  # OmDet-Turbo's default task prompt
        return {"classes_input_ids": q["input_ids"], "classes_attention_mask": q["attention_mask"],
                "tasks_input_ids": task["input_ids"], "tasks_attention_mask": task["attention_mask"],
                "classes_structure": torch.tensor([len(chunk.entries)])}, None

    def _forward(self, inputs: dict[str, torch.Tensor], settings: DetectSettings, timer: Any) -> Any:
        inputs = {k: v.to(settings.device) for k, v in inputs.items()}
        with self._model_context(settings, timer):
            return self.loaded.model(**inputs)

    @staticmethod
    @contextmanager
    def _model_context(settings: DetectSettings, timer: Any) -> Iterator[None]:
        """No gradients, the run's autocast, and the timer's "model" clock around model work."""
        device, dtype = settings.device, settings.autocast_dtype
        amp = torch.autocast(torch.device(device).type, dtype=dtype) if dtype is not None else nullcontext()
        clock = timer.time("model", device) if timer is not None else nullcontext()
        with torch.no_grad(), amp, clock:
            yield

    def _scores(self, out: Any, tmap: torch.Tensor | None, j: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """([Q, C] class scores, [Q, 4] normalised cxcywh boxes) of image j of a forward pass."""
        text = self.loaded.family.text
        if text == "caption":
            return outputs.caption_scores(out.logits[j], tmap), out.pred_boxes[j].float().cpu()
        if text == "queries":
            return out.logits[j].float().sigmoid().cpu(), out.pred_boxes[j].float().cpu()
        return out.decoder_class_logits[j].float().sigmoid().cpu(), out.decoder_coord_logits[j].float().cpu()

    def _select(self, scores: torch.Tensor, boxes: torch.Tensor, cap: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores = scores.cpu()
        nms = self.loaded.family.nms_iou
        if nms is None:
            return outputs.top_pairs(scores, boxes, cap)
        # OmDet-Turbo's own post-processing: top num_queries pairs, class-wise NMS, then the task's cap
        b, s, c = outputs.top_pairs(scores, boxes, scores.shape[0])
        b, s, c = outputs.class_nms(b, s, c, nms)
        return b[:cap], s[:cap], c[:cap]


def refusal(family: Any, regime: str, grounding: bool = False) -> str | None:
    """Why `family` cannot run `regime` (on a grounding task when `grounding`), or None."""
    return family.refusal(regime, "grounding" if grounding else "detection")
