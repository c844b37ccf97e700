"""The one bootstrap interval every report and study quotes, so their CIs mean the same thing.

A 95% percentile bootstrap of the mean (scipy.stats.bootstrap, fixed seed): the percentile interval
stays defined for the tiny, sometimes tied samples of seeds or paired runs, where BCa returns NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

N_RESAMPLES = 9999


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, seed: int = 0, n_resamples: int = N_RESAMPLES, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values`; NaN with fewer than two values, the value
    itself when they are all equal (no resample can move it)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return math.nan, math.nan
    if np.ptp(v) == 0:
        return float(v[0]), float(v[0])
    res = stats.bootstrap((v,), np.mean, confidence_level=level, n_resamples=n_resamples, method="percentile",
                          rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
