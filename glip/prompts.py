"""Detection prompts: class names -> caption, character spans, token positive maps, chunks.

Follows the official maskrcnn_benchmark/engine/inference.py (create_queries_and_maps, chunks): names joined by
". " with no trailing separator, one span per
class covering the name only (not its caption-prompt prefix/suffix), spans mapped to tokens with
`char_to_token` and the official fallbacks, `[CLS]` at token 0 so class tokens start at 1, and
prompts longer than 256 tokens split into consecutive chunks of classes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import BatchEncoding, PreTrainedTokenizerBase

from glip.language import MAX_QUERY_LEN

Span = tuple[int, int]


def clean_name(name: str) -> str:
    """The official clean_name (maskrcnn_benchmark/engine/inference.py), quirks included.

    Removes a (greedy) "(...)", turns "_" into " " and replaces each non-overlapping double space
    by one space; "bow_(weapon)" becomes "bow " with its trailing space, as in the official code.
    """
    name = re.sub(r"\(.*\)", "", name)
    name = re.sub(r"_", " ", name)
    name = re.sub(r"  ", " ", name)
    return name


def _aligned(values: Sequence[str] | None, n: int, what: str) -> list[str]:
    """Per-name prefixes/suffixes; None means empty strings."""
    if values is None:
        return [""] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries but there are {n} names; give one per name")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise TypeError(f"{what}[{i}] must be a string, got {type(v).__name__}")
    return values


def build_caption(
    names: Sequence[str],
    separator: str = ". ",
    prefixes: Sequence[str] | None = None,
    suffixes: Sequence[str] | None = None,
) -> tuple[str, list[Span]]:
    """Caption and one (start, end) char span per name (official create_queries_and_maps).

    Entry i is `prefixes[i] + names[i] + suffixes[i]`; entries are joined by `separator` with no
    trailing separator; span i covers names[i] only. Names are used as given (call clean_name first
    where the official path does).
    """
    names = list(names)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"names[{i}] must be a string, got {type(name).__name__}")
        if not name:
            raise ValueError(f"names[{i}] is empty; every class needs a non-empty name to be prompted")
    prefixes = _aligned(prefixes, len(names), "prefixes")
    suffixes = _aligned(suffixes, len(names), "suffixes")
    parts: list[str] = []
    spans: list[Span] = []
    length = 0
    for i, (prefix, name, suffix) in enumerate(zip(prefixes, names, suffixes)):
        start = length + len(prefix)
        spans.append((start, start + len(name)))
        entry = prefix + name + suffix + (separator if i < len(names) - 1 else "")
        parts.append(entry)
        length += len(entry)
    return "".join(parts), spans


def _char_to_token(encoding: BatchEncoding, char: int, n_chars: int) -> int | None:
    """Token index of a character, None for whitespace or a position outside the caption."""
    if char < 0 or char >= n_chars:
        return None
    return encoding.char_to_token(char)


def _span_tokens(encoding: BatchEncoding, span: Span, n_chars: int) -> tuple[int, int] | None:
    """First and last token of a char span, with the official fallbacks (official create_queries_and_maps and
    maskrcnn_benchmark/data/datasets/modulated_coco.py, create_positive_map).

    char_to_token(beg), else beg+1, else beg+2; char_to_token(end-1), else end-2, else end-3.
    """
    beg, end = span
    beg_pos = _char_to_token(encoding, beg, n_chars)
    if beg_pos is None:
        beg_pos = _char_to_token(encoding, beg + 1, n_chars)
        if beg_pos is None:
            beg_pos = _char_to_token(encoding, beg + 2, n_chars)
    end_pos = _char_to_token(encoding, end - 1, n_chars)
    if end_pos is None:
        end_pos = _char_to_token(encoding, end - 2, n_chars)
        if end_pos is None:
            end_pos = _char_to_token(encoding, end - 3, n_chars)
    if beg_pos is None or end_pos is None or end_pos < beg_pos:
        return None
    return beg_pos, end_pos


def positive_map(
    tokenizer: PreTrainedTokenizerBase,
    caption: str,
    spans: Sequence[Sequence[Span]],
    max_len: int = MAX_QUERY_LEN,
) -> torch.Tensor:
    """Binary [P, max_len] map: row p marks the tokens of phrase p (all its spans).

    The caption is tokenised without truncation, as the official create_positive_map; where the
    official code silently skips a span it cannot map and indexes past 256 for long prompts
    (official TEST.CHUNKED_EVALUATION), this raises a ValueError naming the phrase.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            "positive_map needs a fast tokenizer (char_to_token); use glip.language.load_tokenizer"
        )
    encoding = tokenizer(caption, add_special_tokens=True, truncation=False, verbose=False)
    n_chars = len(caption)
    out = torch.zeros(len(spans), max_len, dtype=torch.float32)  # [P, max_len]
    for p, phrase_spans in enumerate(spans):
        if len(phrase_spans) == 0:
            raise ValueError(f"phrase {p} has no character span")
        for beg, end in phrase_spans:
            text = caption[beg:end]
            if not (0 <= beg < end <= n_chars):
                raise ValueError(
                    f"phrase {p}: span ({beg}, {end}) is empty or outside the caption of {n_chars} characters"
                )
            tokens = _span_tokens(encoding, (beg, end), n_chars)
            if tokens is None:
                raise ValueError(f"phrase {p} ({text!r}, chars {beg}-{end}) maps to no token of the caption")
            first, last = tokens
            if last >= max_len:
                raise ValueError(
                    f"phrase {p} ({text!r}) ends at token {last}, beyond max_len={max_len}; "
                    f"split the prompt with build_prompt_chunks"
                )
            out[p, first : last + 1] = 1.0
    return out


def fit_positive_map(pm: torch.Tensor, num_tokens: int, what: str = "positive map") -> torch.Tensor:
    """[P, T'] positive map -> [P, num_tokens]: zero-pad, or drop trailing columns that must be all zero.

    Why: maps are built at max_query_len while inference trims the text to the longest caption; the
    model and the cached inference engine both fit maps with this one rule so their scores agree.
    """
    if pm.dim() != 2:
        raise ValueError(f"{what} must be [P, T], got shape {tuple(pm.shape)}")
    if pm.shape[1] > num_tokens:
        if pm[:, num_tokens:].any():
            raise ValueError(f"{what} marks token positions >= {num_tokens} (max_query_len); chunk the prompt")
        return pm[:, :num_tokens]
    if pm.shape[1] < num_tokens:
        return torch.nn.functional.pad(pm, (0, num_tokens - pm.shape[1]))
    return pm


def _n_tokens(tokenizer: PreTrainedTokenizerBase, caption: str) -> int:
    """Tokens of a caption including [CLS] and [SEP]."""
    return len(tokenizer(caption, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])


def chunk_phrases(
    tokenizer: PreTrainedTokenizerBase,
    names: Sequence[str],
    separator: str = ". ",
    max_len: int = MAX_QUERY_LEN,
    chunk_size: int | None = None,
    prefixes: Sequence[str] | None = None,
    suffixes: Sequence[str] | None = None,
) -> list[list[int]]:
    """Split the class list into consecutive chunks whose captions fit `max_len` tokens.

    With `chunk_size` the official TEST.CHUNKED_EVALUATION blocks of `chunk_size` consecutive
    classes come first (official TEST.CHUNKED_EVALUATION, engine/inference.py; 40 for LVIS); a block whose
    caption would still
    exceed `max_len` (the official code would index past 256 there) is split further, greedily.
    Without `chunk_size`, classes are packed greedily. Every index appears once, in order.
    """
    names = list(names)
    prefixes = _aligned(prefixes, len(names), "prefixes")
    suffixes = _aligned(suffixes, len(names), "suffixes")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
    block = chunk_size or max(len(names), 1)

    def caption_of(idx: list[int]) -> str:
        return build_caption(
            [names[i] for i in idx], separator, [prefixes[i] for i in idx], [suffixes[i] for i in idx]
        )[0]

    chunks: list[list[int]] = []
    for block_start in range(0, len(names), block):
        block_idx = list(range(block_start, min(block_start + block, len(names))))
        if _n_tokens(tokenizer, caption_of(block_idx)) <= max_len:  # the common case: one tokenisation
            chunks.append(block_idx)
            continue
        current: list[int] = []
        for i in block_idx:
            if current and _n_tokens(tokenizer, caption_of([*current, i])) <= max_len:
                current.append(i)
                continue
            if current:
                chunks.append(current)
            n = _n_tokens(tokenizer, caption_of([i]))
            if n > max_len:
                raise ValueError(
                    f"class {i} ({names[i]!r} with its prefix/suffix) alone takes {n} tokens, more than "
                    f"max_len={max_len}; shorten its name or caption prompt"
                )
            current = [i]
        chunks.append(current)
    return chunks



def phrase_spans(caption: str) -> list[tuple[int, int]]:
    """Character spans of the '.'-separated phrases of a caption, surrounding spaces excluded:
    "cat. big dog" -> [(0, 3), (5, 12)]."""
    spans = []
    for m in re.finditer(r"[^.]+", caption):
        text = m.group()
        if text.strip():
            lead, trail = len(text) - len(text.lstrip()), len(text) - len(text.rstrip())
            spans.append((m.start() + lead, m.end() - trail))
    return spans


@dataclass
class PromptChunk:
    """One forward pass worth of prompt: a caption and the map from its phrases to tokens.

    spans: per phrase, its char spans; phrase_indices: position of each phrase in the full name
    list; positive_map: [P, max_len] binary float.
    """

    caption: str
    spans: list[list[Span]]
    phrase_indices: list[int]
    positive_map: torch.Tensor


def build_prompt_chunks(
    tokenizer: PreTrainedTokenizerBase,
    names: Sequence[str],
    separator: str = ". ",
    chunk_size: int | None = None,
    prefixes: Sequence[str] | None = None,
    suffixes: Sequence[str] | None = None,
    max_len: int = MAX_QUERY_LEN,
) -> list[PromptChunk]:
    """Captions, spans and positive maps for a class list, chunked to fit `max_len` tokens."""
    names = list(names)
    prefixes = _aligned(prefixes, len(names), "prefixes")
    suffixes = _aligned(suffixes, len(names), "suffixes")
    out: list[PromptChunk] = []
    for idx in chunk_phrases(tokenizer, names, separator, max_len, chunk_size, prefixes, suffixes):
        caption, spans = build_caption(
            [names[i] for i in idx], separator, [prefixes[i] for i in idx], [suffixes[i] for i in idx]
        )
        phrase_spans = [[span] for span in spans]
        pmap = positive_map(tokenizer, caption, phrase_spans, max_len)
        out.append(PromptChunk(caption=caption, spans=phrase_spans, phrase_indices=idx, positive_map=pmap))
    return out
