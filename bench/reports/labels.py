"""Short variant labels: what tells rows apart, not every hyper-parameter a run was given.

A record's variant lists every override (`split=test, batch_size=4, fusion=deep, lr=0.001, ...`). A
reader comparing rows needs only the settings that differ between rows of the same model and regime:
a setting every such row shares (a training budget, one regime's own learning rate) is left out of the
label; the full string stays in the CSV and the HTML row details.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DEFAULT_LABEL = "default"


def _tokens(variant: str) -> dict[str, str]:
    return {t.split("=", 1)[0]: t for t in (p.strip() for p in variant.split(", ")) if t}


def varying_keys(rows: Sequence[tuple[str, str]]) -> set[str]:
    """Keys whose setting differs between rows of one context; rows are (context, variant) and a key
    one row sets and another leaves unset counts as differing."""
    by_context: dict[str, list[dict[str, str]]] = {}
    for context, variant in rows:
        by_context.setdefault(context, []).append(_tokens(variant))
    varying: set[str] = set()
    for token_sets in by_context.values():
        keys = {k for t in token_sets for k in t}
        varying |= {k for k in keys if len({t.get(k) for t in token_sets}) > 1}
    return varying


def short_labels(rows: Sequence[tuple[str, str, str, str]]) -> list[str]:
    """One label per (model, regime, checkpoint, variant) row: the varying settings, in the record's
    order; the checkpoint's file name is added only where two rows would otherwise share a label."""
    varying = varying_keys([(f"{m}\0{r}", v) for m, r, _, v in rows])
    labels = [", ".join(t for k, t in _tokens(v).items() if k in varying) or DEFAULT_LABEL for _, _, _, v in rows]
    checkpoints: dict[tuple[str, str], set[str]] = {}
    for (model, _, ckpt, _), label in zip(rows, labels):
        checkpoints.setdefault((model, label), set()).add(ckpt)
    out = []
    for (model, _, ckpt, _), label in zip(rows, labels):
        if len(checkpoints[(model, label)]) > 1 and ckpt:
            label = Path(ckpt).stem if label == DEFAULT_LABEL else f"{label} @{Path(ckpt).stem}"
        out.append(label)
    return out
