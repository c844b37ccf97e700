"""A task's class prompt as each family's text input, in chunks that fit the model's limits.

The task fixes the class names, their order, prefixes/suffixes (its prompt set) and the chunk size
(LVIS: 40 classes); the model adds its own limit: Grounding DINO's caption holds at most max_text_len
tokens, so a chunk also ends where the next class would not fit. Caption families get "a. b." captions
with the character span of each class name (scored over its tokens); query families get one query
per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.util.errors import UserError

SEPARATOR = ". "  # Grounding DINO's class separator; the caption ends with "."


@dataclass(frozen=True)
class TextChunk:
    """One model input's classes: entries (prefix + name + suffix) and, for captions, the caption and name spans."""

    entries: tuple[str, ...]
    caption: str | None = None
    spans: tuple[tuple[int, int], ...] = ()  # character span of each class name in the caption


def class_entries(task: Any, dataset: Any, prompt_set: str) -> tuple[list[str], list[tuple[int, int]], list[int]]:
    """(entry text, name span inside the entry, category id) of every class, in the task's order."""
    if task.format == "mdetr_flickr":
        raise UserError(f"task {task.name} is a grounding task: its prompts are the captions themselves")
    cats = dataset.categories
    names, prefixes, suffixes = task.prompt_names(prompt_set, [c["name"] for c in cats])
    entries = [p + n + s for p, n, s in zip(prefixes, names, suffixes)]
    spans = [(len(p), len(p) + len(n)) for p, n in zip(prefixes, names)]
    return entries, spans, [int(c["id"]) for c in cats]


def make_caption(entries: Sequence[str], name_spans: Sequence[tuple[int, int]]) -> TextChunk:
    """"a. b." with each name's character span in it."""
    caption, spans = "", []
    for entry, (start, end) in zip(entries, name_spans):
        spans.append((len(caption) + start, len(caption) + end))
        caption += entry + SEPARATOR
    return TextChunk(tuple(entries), caption.rstrip(" "), tuple(spans))


def caption_chunks(task: Any, dataset: Any, prompt_set: str, tokenizer: Any, max_tokens: int
                   ) -> list[tuple[TextChunk, list[int]]]:
    """Consecutive classes per caption: at most the task's chunk_size, and at most max_tokens tokens."""
    entries, spans, ids = class_entries(task, dataset, prompt_set)
    out: list[tuple[TextChunk, list[int]]] = []
    start = 0
    while start < len(entries):
        end = start + 1
        if _length(tokenizer, make_caption(entries[start:end], spans[start:end])) > max_tokens:
            raise UserError(f"task {task.name}: class {entries[start]!r} alone takes more than the model's "
                            f"{max_tokens} text tokens")
        limit = len(entries) if task.chunk_size is None else min(len(entries), start + task.chunk_size)
        while end < limit and _length(tokenizer, make_caption(entries[start:end + 1], spans[start:end + 1])) <= max_tokens:
            end += 1
        out.append((make_caption(entries[start:end], spans[start:end]), ids[start:end]))
        start = end
    return out


def query_chunks(task: Any, dataset: Any, prompt_set: str) -> list[tuple[TextChunk, list[int]]]:
    """One query per class, the task's chunk_size classes per model input (all of them when it has none)."""
    entries, _, ids = class_entries(task, dataset, prompt_set)
    size = task.chunk_size or len(entries)
    return [(TextChunk(tuple(entries[i:i + size])), ids[i:i + size]) for i in range(0, len(entries), size)]


def _length(tokenizer: Any, chunk: TextChunk) -> int:
    return len(tokenizer(chunk.caption)["input_ids"])


def token_map(offsets: Sequence[tuple[int, int]], spans: Sequence[Sequence[tuple[int, int]]], num_tokens: int) -> Any:
    """[phrases, num_tokens] 0/1 map: token t belongs to phrase p when its characters overlap one of p's spans.

    Special tokens have the empty offset (0, 0) and belong to no phrase. A phrase whose characters fall
    past the truncated text gets an empty row (it scores 0).
    """
    import torch

    out = torch.zeros(len(spans), num_tokens)
    for p, phrase_spans in enumerate(spans):
        for s, e in phrase_spans:
            for t, (a, b) in enumerate(list(offsets)[:num_tokens]):
                if b > a and a < e and b > s:
                    out[p, t] = 1.0
    return out
