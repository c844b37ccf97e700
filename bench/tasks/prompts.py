"""A task's prompt set -> GLIP prompt chunks whose phrases map back to data-set category ids.

Names, prefixes and suffixes come from `Task.prompt_names` (category-id order; plain = the class names
through the official clean_name, official = the ODinW-35 caption prompts). They go to
`glip.prompts.build_prompt_chunks`, which splits them into consecutive chunks that fit 256 tokens (LVIS:
blocks of `chunk_size` 40, TEST.CHUNKED_EVALUATION in maskrcnn_benchmark/engine/inference.py). The
model's labels are 0-based phrase indices *within a chunk*; the second element of each pair maps them to
data-set category ids, which is what prediction files hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.util.errors import UserError

if TYPE_CHECKING:
    from bench.data.types import DetectionDataset
    from bench.tasks.registry import Task
    from glip.prompts import PromptChunk


def task_prompt_chunks(
    task: Task, dataset: DetectionDataset, tokenizer, prompt_set: str = "plain", max_len: int = 256
) -> list[tuple[PromptChunk, list[int]]]:
    """(chunk, category ids of its phrases in phrase order) for every chunk of the task's prompt."""
    from glip.prompts import build_prompt_chunks

    if task.is_grounding:
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
    warn_token_collisions(tokenizer, task.name, names)
    ids = [int(c["id"]) for c in cats]
    out = [(chunk, [ids[i] for i in chunk.phrase_indices]) for chunk in chunks]
    covered = sorted(i for _, cid in out for i in cid)
    if covered != sorted(ids):  # every class prompted exactly once, or AP would silently drop classes
        raise UserError(f"task {task.name}: prompt chunks cover {len(covered)} phrases for {len(ids)} categories")
    return out


_warned: set[tuple[str, tuple[str, ...]]] = set()


def token_collisions(tokenizer, names: list[str]) -> list[list[str]]:
    """Groups of class names the tokenizer encodes as the same tokens ('circlé' and 'circle' for an uncased
    BERT; two names of unknown words, both [UNK]): the model sees one prompt for all of them."""
    by_tokens: dict[tuple[int, ...], list[str]] = {}
    for name in names:
        by_tokens.setdefault(tuple(tokenizer(name, add_special_tokens=False)["input_ids"]), []).append(name)
    return [group for group in by_tokens.values() if len(group) > 1]


def warn_token_collisions(tokenizer, task_name: str, names: list[str]) -> None:
    """One warning per task and tokenizer vocabulary for classes the model cannot tell apart (as `predict` warns)."""
    from bench.util.logs import get_logger

    groups = token_collisions(tokenizer, names)
    key = (task_name, tuple(sorted(n for g in groups for n in g)))
    if groups and key not in _warned:
        _warned.add(key)
        get_logger("tasks").warning(
            "task %s: classes the tokenizer encodes as the same tokens, so the model cannot tell them apart "
            "(their AP is a coin toss between them): %s; rename them in the task's classes or prompt set", task_name,
            "; ".join(" = ".join(repr(n) for n in g) for g in groups))


def class_entries(task: Task, dataset: DetectionDataset, prompt_set: str = "plain") -> dict[int, tuple[str, str, str]]:
    """category id -> (prefix, name, suffix) of every class of `dataset` as the task's prompt set writes it:
    the vocabulary of per-image training captions (bench.data.od_captions)."""
    names, prefixes, suffixes = task.prompt_names(prompt_set, [c["name"] for c in dataset.categories])
    return {int(c["id"]): entry for c, entry in zip(dataset.categories, zip(prefixes, names, suffixes))}
