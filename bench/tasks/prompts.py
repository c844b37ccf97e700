"""A task's prompt set -> GLIP prompt chunks whose phrases map back to data-set category ids.

Names, prefixes and suffixes come from `Task.prompt_names` (category-id order; plain = the class
names through the official clean_name, official = the ODinW-35 caption prompts). They go to
`glip.prompts.build_prompt_chunks`, which splits them into consecutive chunks that fit 256 tokens
(LVIS: blocks of `chunk_size` 40, glip-official.md 3.3). The model's labels are 0-based phrase
indices *within a chunk*; `chunk_labels_to_category_ids` / `merge_chunk_detections` turn them into
data-set category ids, which is what prediction files hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from bench.util.errors import UserError

if TYPE_CHECKING:
    from bench.data.types import DetectionDataset
    from bench.tasks.registry import Task
    from glip.prompts import PromptChunk
    from glip.structures import Detections


def task_prompt_chunks(
    task: Task, dataset: DetectionDataset, tokenizer, prompt_set: str = "plain", max_len: int = 256
) -> list[tuple[PromptChunk, list[int]]]:
    """(chunk, category ids of its phrases in phrase order) for every chunk of the task's prompt."""
    from glip.prompts import build_prompt_chunks

    if task.format == "mdetr_flickr":
        raise UserError(f"task {task.name} is a grounding task: its prompts are the captions themselves")
    cats = dataset.categories
    names, prefixes, suffixes = task.prompt_names(prompt_set, [c["name"] for c in cats])
    try:
        chunks = build_prompt_chunks(
            tokenizer, names, separator=task.separator, chunk_size=task.chunk_size,
            prefixes=prefixes, suffixes=suffixes, max_len=max_len,
        )
    except ValueError as e:
        raise UserError(f"task {task.name}, prompt set {prompt_set!r}: {e}") from e
    ids = [int(c["id"]) for c in cats]
    out = [(chunk, [ids[i] for i in chunk.phrase_indices]) for chunk in chunks]
    covered = sorted(i for _, cid in out for i in cid)
    if covered != sorted(ids):  # every class prompted exactly once, or AP would silently drop classes
        raise UserError(f"task {task.name}: prompt chunks cover {len(covered)} phrases for {len(ids)} categories")
    return out


def chunk_labels_to_category_ids(labels: torch.Tensor | Sequence[int], category_ids: Sequence[int]) -> torch.Tensor:
    """Map one chunk's 0-based phrase labels [N] to data-set category ids [N] (LongTensor)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    table = torch.as_tensor(list(category_ids), dtype=torch.long)
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(table)):
        raise ValueError(
            f"labels must be phrase indices in [0, {len(table)}) for this chunk, got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return table[labels]


def merge_chunk_detections(
    per_chunk: Sequence[Detections], chunk_category_ids: Sequence[Sequence[int]], max_per_image: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate one image's per-chunk detections into (boxes_xyxy [N,4], scores [N], category_ids [N]).

    Sorted by score, highest first. The official chunked evaluation concatenates the chunks' outputs
    without a further cap (glip-official.md 3.3); `max_per_image` optionally keeps the top scores.
    """
    if len(per_chunk) != len(chunk_category_ids):
        raise ValueError(f"{len(per_chunk)} chunk outputs but {len(chunk_category_ids)} chunk id lists")
    if not per_chunk:
        return torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)
    boxes = torch.cat([d.boxes_xyxy.reshape(-1, 4).float() for d in per_chunk])  # [N, 4]
    scores = torch.cat([d.scores.reshape(-1).float() for d in per_chunk])  # [N]
    cats = torch.cat([chunk_labels_to_category_ids(d.labels, ids) for d, ids in zip(per_chunk, chunk_category_ids)])
    order = torch.argsort(scores, descending=True, stable=True)
    if max_per_image is not None:
        order = order[:max_per_image]
    return boxes[order], scores[order], cats[order]
