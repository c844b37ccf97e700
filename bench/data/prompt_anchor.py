"""Class-anchored prompt offsets: prompt tuning for tasks whose captions change (open-vocabulary, chunked,
per-image sampled).

Official prompt tuning (language_prompt_v2) learns one offset per token *position* of the one fixed caption
it trains and evaluates with. When captions change (OV-COCO trains on a 48-class caption and is evaluated
on a 65-class one; OV-LVIS trains on per-image sampled captions and is evaluated in 40-class chunks), a
position holds a different word in every caption, so per-position offsets would be applied to words they
were never trained for. Here the offsets are anchored to what the tokens say instead:

- the k-th token of class c's name adds row `class_rows[c] + k` (every class of the evaluated prompt, novel
  ones included, has its own rows; a class absent from training keeps its zero rows, so an open-vocabulary
  run leaves novel classes exactly as the pre-trained model reads them);
- every other token ([CLS], [SEP], separators, prompt prefixes and suffixes) adds the row of its token id.

The same token of a class then gets the same offset in every caption it appears in: the training
captions, the early-stopping captions and each evaluated chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

NO_ROW = -1  # padding: no offset (glip.model.GLIP.encode_text)


@dataclass(frozen=True)
class ClassAnchor:
    """The row layout of a class-anchored offset table.

    class_rows: category id -> its first row; class_tokens: category id -> its name's token count;
    word_rows: token id -> row, for tokens outside every class name.
    """

    class_rows: Mapping[int, int]
    class_tokens: Mapping[int, int]
    word_rows: Mapping[int, int]

    @property
    def size(self) -> int:
        return sum(self.class_tokens.values()) + len(self.word_rows)

    @classmethod
    def build(cls, captions: Iterable[tuple[Sequence[int], torch.Tensor, Sequence[int]]]) -> ClassAnchor:
        """From (token ids [T], positive map [P, >= T], category id of each map row) per caption: the
        evaluated prompt's chunks, which name every class the run can see."""
        class_tokens: dict[int, int] = {}
        words: set[int] = set()
        for ids, pmap, category_ids in captions:
            in_class = torch.zeros(len(ids), dtype=torch.bool)
            for cid, tokens in zip(category_ids, _class_token_positions(pmap, len(ids))):
                known = class_tokens.setdefault(int(cid), len(tokens))
                if known != len(tokens):
                    raise ValueError(f"class {cid} has {len(tokens)} tokens in one caption and {known} in another")
                in_class[tokens] = True
            words.update(int(t) for t, inside in zip(ids, in_class.tolist()) if not inside)
        class_rows, row = {}, 0
        for cid in sorted(class_tokens):
            class_rows[cid], row = row, row + class_tokens[cid]
        word_rows = {t: row + i for i, t in enumerate(sorted(words))}
        return cls(class_rows, class_tokens, word_rows)

    def rows(self, ids: Sequence[int], pmap: torch.Tensor, category_ids: Sequence[int], length: int) -> torch.Tensor:
        """[length] long: the table row of each of a caption's tokens (NO_ROW past its tokens).

        ids: the caption's token ids [T]; pmap: [P, >= T] its positive map, row p = the tokens of class
        category_ids[p]. A class or word the layout does not hold is a ValueError naming it."""
        if len(ids) > length:
            raise ValueError(f"caption of {len(ids)} tokens is longer than {length}")
        out = torch.full((length,), NO_ROW, dtype=torch.long)
        in_class = torch.zeros(len(ids), dtype=torch.bool)
        for cid, tokens in zip(category_ids, _class_token_positions(pmap, len(ids))):
            cid = int(cid)
            if cid not in self.class_rows:
                raise ValueError(f"class {cid} is not in the prompt offsets' {len(self.class_rows)} classes")
            if len(tokens) != self.class_tokens[cid]:
                raise ValueError(f"class {cid} has {len(tokens)} tokens here and {self.class_tokens[cid]} in the "
                                 "evaluated prompt")
            out[tokens] = self.class_rows[cid] + torch.arange(len(tokens))
            in_class[tokens] = True
        for i in (~in_class).nonzero().flatten().tolist():
            if int(ids[i]) not in self.word_rows:
                raise ValueError(f"token id {int(ids[i])} (position {i}) is outside every class name and was not "
                                 "in the evaluated prompt")
            out[i] = self.word_rows[int(ids[i])]
        return out

    def record(self) -> dict[str, Any]:
        """What a run's record states (provenance.prompt_offsets): enough to read its adapter file back."""
        return {"anchor": "class", "rows": self.size, "classes": len(self.class_rows), "words": len(self.word_rows),
                "class_rows": {str(c): [r, self.class_tokens[c]] for c, r in self.class_rows.items()},
                "word_rows": {str(t): r for t, r in self.word_rows.items()},
                "source": "docs/finetuning.md, prompt tuning when captions change"}


def _class_token_positions(pmap: torch.Tensor, n_tokens: int) -> list[torch.Tensor]:
    """Per map row, the positions (< n_tokens) of its marked tokens, in caption order; a row marking a
    token past the caption is a ValueError."""
    marked = pmap > 0  # [P, >= T]
    if bool(marked[:, n_tokens:].any()):
        raise ValueError(f"a positive-map row marks a token past the caption's {n_tokens} tokens")
    return [row[:n_tokens].nonzero().flatten() for row in marked]
