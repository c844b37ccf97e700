"""bench.reports.stats.bootstrap_ci: the interval of the ablation tables and the self-training summary."""

import numpy as np
from scipy import stats as scipy_stats

from bench.reports.stats import N_RESAMPLES, bootstrap_ci


def test_bootstrap_ci_is_scipys_percentile_interval():
    values = [1.0, 2.5, 3.0, 7.0, 4.0]
    for seed, n in ((0, 2000), (3, N_RESAMPLES)):
        expected = scipy_stats.bootstrap((np.asarray(values),), np.mean, n_resamples=n, method="percentile",
                                         rng=np.random.default_rng(seed)).confidence_interval
        assert bootstrap_ci(values, seed, n_resamples=n) == (expected.low, expected.high)
    low, high = bootstrap_ci(values)
    assert 1.0 <= low < np.mean(values) < high <= 7.0
    assert bootstrap_ci(values, n_resamples=200) != (low, high)  # the count is honoured


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci([2.0, 2.0]) == (2.0, 2.0)
    assert all(np.isnan(bootstrap_ci([1.0])))
    assert all(np.isnan(bootstrap_ci(np.ones(0))))
