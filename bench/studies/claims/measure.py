"""Per-seed values out of the study's records and side-study rows, as designs for the bootstrap:
pretraining seed -> {fine-tuning seed: value}. A zero-shot run has one value per pretraining seed (key 0)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from bench.results.records import primary_value

Design = dict[int, dict[int, float]]


def pretrain_seed_of(record: dict[str, Any]) -> int | None:
    """The pretraining seed a record names in its provenance (None: no pretrained checkpoint)."""
    return record["provenance"].get("seeds", {}).get("pretrain")


def fusion_of(record: dict[str, Any]) -> str:
    return record["spec"]["overrides"].get("fusion", "deep")


def run_design(records: Iterable[dict[str, Any]], *, task: str, regime: str, fusion: str,
               shots: int | None = 0, pretrained: bool = True) -> Design:
    """Primary metric of the matching runs by (pretraining seed, fine-tuning seed).

    pretrained=False selects runs without a checkpoint (the supervised baseline), all under pretraining key 0.
    """
    out: Design = {}
    for r in records:
        spec = r["spec"]
        if (spec["task"], spec["regime"], spec["shots"], fusion_of(r)) != (task, regime, shots, fusion):
            continue
        if (spec["checkpoint"] is not None) != pretrained:
            continue
        p = pretrain_seed_of(r) if pretrained else 0
        if p is None:
            raise ValueError(f"run {spec['task']}/{regime} from {spec['checkpoint']} names no pretraining seed in its "
                             "provenance (seeds.pretrain): its checkpoint has no metadata beside it")
        value = primary_value(r)
        if value is not None and math.isfinite(value):
            out.setdefault(p, {})[spec["seed"]] = float(value)
    return out


def row_design(rows: Iterable[dict[str, Any]], column: str, seed_column: str = "seed",
               **where: Any) -> Design:
    """A column of side-study rows (each with pretrain_seed) by (pretraining seed, row seed)."""
    out: Design = {}
    for row in rows:
        if any(row.get(k) != v for k, v in where.items()):
            continue
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out.setdefault(int(row["pretrain_seed"]), {})[int(row[seed_column])] = float(value)
    return out
