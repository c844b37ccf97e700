"""The inference engine the runner calls: chunked prompts with cached image and text features, size-bucketed
batches, and images decoded and preprocessed while the model runs (DataLoader worker processes on GPU, a
background thread on CPU when a core is free for it).

Why not just `model.detect` per chunk (the naive path)? With a chunked prompt (LVIS: 1203 classes in 31
captions) the naive path reruns the image backbone + FPN and BERT once per chunk and image. Neither depends
on the other input: image features depend only on the image, text features only on the caption. So:

    texts = encode_prompts(model, [chunk captions])          # BERT once per chunk, for the whole split
    for batch in loader:                                       # decode + resize + normalise + pad, ahead
        features = model.encode_images(batch)                  # Swin + FPN once per image
        for text, map in zip(texts, maps):                     # only fusion + head + postprocess per chunk
            model.forward_head(features, text) -> model.postprocessor(..., detections_per_img=cap)

which gives the same detections as `model.detect` chunk by chunk (tests/bench/models/test_inference.py).
Late fusion goes one step further: its head tower never sees the text, so `head.tower` and
`head.box_branches` run once per image and only `head.predict` (the token logits) per chunk. Both paths
are the head's own public methods, so a change to the head reaches this engine and `model.forward` alike.

Batches: the official model lets the text->image attention see padded pixels (official
maskrcnn_benchmark/structures/image_list.py, to_image_list, pads the batch), and
DyConv's GroupNorm / global pooling see them too, so an image's detections depend on what it is batched
with. `plan_batches` therefore groups images by their padded model-input size: within a batch no image is
padded beyond what batch 1 pads it to, and batch > 1 gives the batch-1 detections (up to float rounding).
`group_by_size=False` reproduces the official behaviour (images in data-set order, padded to the largest).

Shapes: B images, T tokens (max_query_len), P phrases of a chunk, D text width.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from bench.metrics.detections import as_dicts
from bench.models.base import ModelTimer, detection_dicts, detection_rows, grounding_entry, merge_chunks
from bench.models.batching import auto_prefetch, auto_workers, image_batches, plan_batches
from glip.language import TextFeatures
from glip.ops.boxes import xyxy_to_xywh
from glip.prompts import fit_positive_map, positive_map
from glip.structures import Detections, ImageBatch

__all__ = ["ModelTimer", "encode_prompts", "detect_chunks", "predict_detection", "predict_grounding",
           "to_coco_detections", "iter_detection", "to_detection_rows"]


_NO_TIMER = ModelTimer()


@contextmanager
def _eval(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the duration, restoring the training flag after (as model.detect).

    Switching modes walks every submodule (~3 ms for glip-synth), so it is only done when needed.
    """
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train(True)


# ------------------------------------------------------------------------------------ chunked detection
def encode_prompts(model: Any, captions: Sequence[str], timer: ModelTimer | None = None,
                   offset_rows: Sequence[torch.Tensor] | None = None) -> list[TextFeatures]:
    """One TextFeatures [1, T, D] per caption: the text encoder runs once per chunk for a whole split.

    One caption per call (batch 1), so the numbers are those `model.detect` computes for a batch of 1.
    offset_rows: per caption, its tokens' prompt-offset rows [max_query_len] (class-anchored offsets).
    """
    timer = timer or _NO_TIMER
    out = []
    with _eval(model):
        for i, caption in enumerate(captions):
            rows = None if offset_rows is None else offset_rows[i][None]  # [1, max_query_len]
            with timer.time("text", _device(model)):
                out.append(model.encode_text([caption], trim_padding=True, offset_rows=rows))
    return out


def _expand(text: TextFeatures, b: int) -> TextFeatures:
    """[1, T, ...] -> [B, T, ...] views (every image of the batch gets the same caption)."""
    if text.hidden.shape[0] == b:
        return text
    return TextFeatures(input_ids=text.input_ids.expand(b, -1), attention_mask=text.attention_mask.expand(b, -1),
                        hidden=text.hidden.expand(b, -1, -1), embedded=text.embedded.expand(b, -1, -1))


def _autocast(device: str | torch.device, dtype: torch.dtype | None) -> Any:
    """torch.autocast on the device's type in `dtype`, or a no-op context when dtype is None."""
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def _device(model: Any) -> torch.device:
    return model.prompt_offset.device


def detect_chunks(model: Any, images: ImageBatch, texts: Sequence[TextFeatures], maps: Sequence[torch.Tensor],
                  timer: ModelTimer | None = None, *, cap: int | None = None) -> list[list[Detections]]:
    """Detections [chunk][image] of every chunk's caption in every image of the batch.

    The backbone + FPN run once for the batch; per chunk only fusion + head + postprocess (the text
    features come from `encode_prompts`). Late fusion's tower never sees the text, so it and the box
    branches also run once per batch and each chunk costs only its token logits; both paths are the
    head's own `tower` / `predict`, so they cannot drift from `model.forward`. maps: one positive map
    [P_k, T] per chunk. cap: detections kept per image and chunk (None: the model's detections_per_img).
    """
    if len(texts) != len(maps):
        raise ValueError(f"{len(texts)} encoded captions but {len(maps)} positive maps (one per chunk)")
    timer = timer or _NO_TIMER
    device = _device(model)
    head = model.head
    b = len(images)
    out: list[list[Detections]] = []
    with _eval(model):
        with timer.time("backbone", device):
            features = model.encode_images(images.to(device))  # P3..P7 [B, C, H_l, W_l]
            anchors = model.anchors(features)
        if head.text_free_tower:
            with timer.time("head_tower", device):
                tower_feats, _ = head.tower(features)
                boxes = head.box_branches(tower_feats)
        for text, pm in zip(texts, maps):
            fitted = fit_positive_map(pm.to(device, torch.float32), text.input_ids.shape[1])
            with timer.time("head", device):
                text_b = _expand(text, b)
                if head.text_free_tower:
                    outputs = head.predict(tower_feats, None, text_b.embedded, boxes)
                else:
                    outputs = model.forward_head(features, text_b)
            with timer.time("postprocess", device):
                out.append(model.postprocessor(outputs, anchors, [fitted] * b, images.image_sizes,
                                               images.original_sizes, detections_per_img=cap))
    return out


def to_coco_detections(image_id: int, parts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                       cap: int | None) -> list[dict[str, Any]]:
    """One image's chunk outputs (boxes xyxy, scores, data-set category ids), concatenated in chunk order,
    sorted by score (stable) and capped at `cap` (None: every chunk's detections are kept) -> COCO
    prediction dicts (docs/formats.md section 2, official +1 width)."""
    return as_dicts(to_detection_rows(image_id, parts, cap))


def to_detection_rows(image_id: int, parts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                      cap: int | None) -> np.ndarray:
    """`to_coco_detections` as (N, 7) rows (bench.models.base.detection_rows)."""
    boxes, scores, labels = merge_chunks(parts, cap)
    return detection_rows(image_id, xyxy_to_xywh(boxes), scores, labels)  # the official export's legacy +1 width


# ------------------------------------------------------------------------------------------ loading
def predict_detection(model: Any, dataset: Any, chunks: Sequence[Any], cap: int, batch_size: int = 1,
                      device: str = "cpu", *, image_ids: Sequence[int] | None = None, **options: Any
                      ) -> tuple[list[dict[str, Any]], float]:
    """COCO-format detections of `image_ids` (default: every image of `dataset`), in that order, and the
    seconds it took: `iter_detection` (which has the options) collected into one list."""
    start = time.perf_counter()
    ids = list(dataset.image_ids if image_ids is None else image_ids)
    preds = detection_dicts(iter_detection(model, dataset, chunks, cap, batch_size, device, image_ids=ids,
                                           **options), ids)
    return preds, time.perf_counter() - start


def iter_detection(model: Any, dataset: Any, chunks: Sequence[Any], cap: int, batch_size: int = 1,
                   device: str = "cpu", *, image_ids: Sequence[int] | None = None, num_workers: int | None = None,
                   group_by_size: bool = True, timer: ModelTimer | None = None, prefetch: bool | None = None,
                   autocast_dtype: torch.dtype | None = None, merge_cap: bool = True,
                   offset_rows: Sequence[torch.Tensor] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Per image of `image_ids` (default: every image of `dataset`) as its batch finishes: (image id, its
    detections as (N, 7) rows, bench.models.base.detection_rows). Batches group images by input size, so
    images come in the order of the plan (bench.models.batching.plan_batches), not of `image_ids`.

    chunks: glip PromptChunks (caption, positive_map [P, T], phrase_indices into dataset.categories).
    Each chunk's detections are labelled with data-set category ids; per image the chunks' detections are
    concatenated in chunk order, sorted by score and capped at `cap` (the task's detections_per_image),
    exactly as running model.detect once per chunk does. The postprocessor's own per-chunk cap is `cap` too
    (official MODEL.ATSS.DETECTIONS_PER_IMG, applied per chunk by
    TEST.CHUNKED_EVALUATION in maskrcnn_benchmark/engine/inference.py). merge_cap=False keeps every
    chunk's detections after the merge: the official chunked LVIS evaluation, whose Fixed AP caps per class.
    num_workers: image-decoding processes (None: `auto_workers`); without them, prefetch
    decodes the next batch in a background thread (None: `auto_prefetch`). Neither changes any number.
    autocast_dtype: run the model under torch.autocast in this dtype (torch.bfloat16: the GPU speed setting
    of issue #9; scores and boxes are still post-processed in float32). None: the model's own precision.
    offset_rows: per chunk, its tokens' rows of a class-anchored prompt-offset table (bench.data.prompt_anchor).
    """
    timer = timer if timer is not None else ModelTimer()
    start = time.perf_counter()
    ids = list(dataset.image_ids if image_ids is None else image_ids)
    cat_ids = torch.tensor([int(c["id"]) for c in dataset.categories], dtype=torch.long)
    lookups = [cat_ids[torch.as_tensor(list(ch.phrase_indices), dtype=torch.long)] for ch in chunks]
    cfg = model.config
    model.to(device)
    with _autocast(device, autocast_dtype):
        texts = encode_prompts(model, [ch.caption for ch in chunks], timer, offset_rows)
    maps = [ch.positive_map for ch in chunks]
    sizes = [(dataset.image(i).width, dataset.image(i).height) for i in ids]
    plan = plan_batches(sizes, batch_size, cfg.min_size, cfg.max_size, cfg.size_divisibility, group_by_size)
    workers = auto_workers(device) if num_workers is None else num_workers
    ahead = auto_prefetch(device) if prefetch is None else prefetch
    try:
        for batch_ids, images in image_batches(dataset.load_image, ids, plan, cfg, workers, ahead):
            with _autocast(device, autocast_dtype):
                per_chunk = detect_chunks(model, images, texts, maps, timer, cap=cap)  # [chunk][image]
            for j, image_id in enumerate(batch_ids):
                parts = [(d[j].boxes_xyxy.cpu(), d[j].scores.cpu(), lookup[d[j].labels.cpu()])
                         for d, lookup in zip(per_chunk, lookups)]
                yield image_id, to_detection_rows(image_id, parts, cap if merge_cap else None)
    finally:
        timer.total += time.perf_counter() - start


def predict_grounding(model: Any, dataset: Any, device: str = "cpu", *, sample_ids: Sequence[int] | None = None,
                      num_workers: int | None = None, timer: ModelTimer | None = None, prefetch: bool | None = None,
                      autocast_dtype: torch.dtype | None = None, merge_cap: bool = True
                      ) -> tuple[list[dict[str, Any]], float]:
    """Flickr-style predictions (docs/formats.md section 2) of `sample_ids` (default all), and the seconds it
    took.

    One image per pass (official: maskrcnn_benchmark/engine/inference.py asserts it for Flickr); the backbone
    runs once per image for all of its
    captions (Flickr30K has about 5 per image), text + head once per caption. num_workers / prefetch /
    autocast_dtype: as in `predict_detection`.
    """
    timer = timer if timer is not None else ModelTimer()
    start = time.perf_counter()
    samples = [dataset.sample(i) for i in (sample_ids if sample_ids is not None else [s.id for s in dataset.samples])]
    by_image: dict[int, list[Any]] = {}
    for s in samples:
        by_image.setdefault(s.image.id, []).append(s)
    first = [group[0].id for group in by_image.values()]  # one sample id per image, to load it by
    model.to(device)
    out: dict[int, dict[str, Any]] = {}
    t = model.config.max_query_len
    workers = auto_workers(device) if num_workers is None else num_workers
    ahead = auto_prefetch(device) if prefetch is None else prefetch
    for (sid,), images in image_batches(dataset.load_image, first, [[k] for k in range(len(first))], model.config,
                                        workers, ahead):
        group = by_image[dataset.sample(sid).image.id]
        maps = [positive_map(model.tokenizer, s.caption, [p.spans for p in s.phrases], max_len=t) for s in group]
        with _autocast(device, autocast_dtype):
            texts = encode_prompts(model, [s.caption for s in group], timer)
            dets = detect_chunks(model, images, texts, maps, timer)  # [sample][1 image]
        for s, d in zip(group, dets):
            out[s.id] = grounding_entry(s.id, d[0].boxes_xyxy.cpu(), d[0].scores.cpu(), d[0].labels.cpu(),
                                        len(s.phrases))
    preds = [out[s.id] for s in samples]
    timer.total += time.perf_counter() - start
    return preds, time.perf_counter() - start
