"""Two-level (hierarchical) bootstrap: pretraining seeds, and fine-tuning seeds within each.

A result of pretrain-then-fine-tune varies with both seeds. Resampling fine-tuning seeds only treats one
pretraining run as the population and gives intervals that are too narrow, so here each resample first
draws pretraining seeds with replacement, then, within every drawn one, its fine-tuning seeds with
replacement. The statistic is the mean over the drawn pretraining seeds of their fine-tuning means.

A design maps pretraining seed -> {fine-tuning seed: value}. Paired comparisons subtract two designs cell
by cell (same pretraining seed and same fine-tuning seed), so the pairing holds at both levels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

Design = Mapping[int, Mapping[int, float]]
N_RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its two-level bootstrap interval."""

    mean: float
    low: float
    high: float
    n_pretrain: int  # pretraining seeds behind the estimate (the smaller side for a difference of two)
    n_finetune: int  # fine-tuning seeds per pretraining seed

    @staticmethod
    def missing() -> Estimate:
        return Estimate(math.nan, math.nan, math.nan, 0, 0)


def as_array(design: Design) -> np.ndarray:
    """The design as a (pretraining seeds x fine-tuning seeds) array, rows in seed order.

    Every pretraining seed must have the same number of fine-tuning values (a balanced design: each draw
    then weighs the same), all finite.
    """
    if not design:
        raise ValueError("empty design: no pretraining seed has a value")
    rows = [[float(v) for _, v in sorted(design[p].items())] for p in sorted(design)]
    sizes = {len(r) for r in rows}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"unbalanced design: fine-tuning values per pretraining seed {sorted(sizes)}")
    values = np.asarray(rows, dtype=float)
    if not np.isfinite(values).all():
        raise ValueError("design holds a non-finite value")
    return values


def paired(a: Design, b: Design) -> dict[int, dict[int, float]]:
    """a - b cell by cell; both must hold the same (pretraining seed, fine-tuning seed) cells."""
    cells_a = {(p, s) for p in a for s in a[p]}
    cells_b = {(p, s) for p in b for s in b[p]}
    if cells_a != cells_b:
        only = sorted(cells_a ^ cells_b)
        raise ValueError(f"paired designs differ in their (pretraining, fine-tuning) seed cells, e.g. {only[0]}")
    return {p: {s: float(a[p][s]) - float(b[p][s]) for s in a[p]} for p in a}


def resample_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The statistic of `n_resamples` two-level resamples of a (P x S) array."""
    n_p, n_s = values.shape
    outer = rng.integers(0, n_p, size=(n_resamples, n_p))
    inner = rng.integers(0, n_s, size=(n_resamples, n_p, n_s))
    return values[outer[:, :, None], inner].mean(axis=(1, 2))


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return float(low), float(high)


def hierarchical_bootstrap(design: Design, n_resamples: int = N_RESAMPLES, seed: int = 0,
                           level: float = LEVEL) -> Estimate:
    """Mean of the design and its percentile interval from the two-level bootstrap."""
    values = as_array(design)
    draws = resample_means(values, n_resamples, np.random.default_rng(seed))
    low, high = _interval(draws, level)
    return Estimate(float(values.mean()), low, high, values.shape[0], values.shape[1])


def independent_difference(a: Design, b: Design, n_resamples: int = N_RESAMPLES, seed: int = 0,
                           level: float = LEVEL) -> Estimate:
    """mean(a) - mean(b) for designs with nothing to pair (e.g. a pretrained model against one trained from
    scratch): each side is resampled on its own, two levels each, and the draws are subtracted. The seed
    counts are a's (the side with pretraining seeds)."""
    va, vb = as_array(a), as_array(b)
    rng = np.random.default_rng(seed)
    draws = resample_means(va, n_resamples, rng) - resample_means(vb, n_resamples, rng)
    low, high = _interval(draws, level)
    return Estimate(float(va.mean() - vb.mean()), low, high, va.shape[0], va.shape[1])
