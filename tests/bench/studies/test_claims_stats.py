"""The two-level bootstrap against the exact distribution of every resample of tiny designs, and the
verdict rule on constructed intervals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.studies.claims import stats
from bench.studies.claims.verdict import verdict


def exact_distribution(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(statistic, probability) of every equally likely two-level resample, enumerated by brute force:
    each ordered draw of pretraining rows, then each ordered draw of fine-tuning cells within every drawn row."""
    n_p, n_s = values.shape
    stats_, count = [], 0
    for outer in itertools.product(range(n_p), repeat=n_p):
        per_row = [list(itertools.product(range(n_s), repeat=n_s)) for _ in outer]
        for inner in itertools.product(*per_row):
            stats_.append(np.mean([values[r, c] for r, cells in zip(outer, inner) for c in cells]))
            count += 1
    support, counts = np.unique(np.round(stats_, 12), return_counts=True)
    return support, counts / count


def exact_quantile(support: np.ndarray, prob: np.ndarray, q: float) -> float:
    return float(support[np.searchsorted(np.cumsum(prob), q - 1e-12)])


DESIGNS = {
    "2x2": np.array([[1.0, 4.0], [10.0, 13.0]]),
    "3x2": np.array([[0.0, 2.0], [5.0, 9.0], [20.0, 21.0]]),
    "2x3": np.array([[3.0, 1.0, 8.0], [-4.0, 0.5, 2.0]]),
}


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_resamples_follow_the_brute_force_distribution(name: str) -> None:
    values = DESIGNS[name]
    support, prob = exact_distribution(values)
    draws = stats.resample_means(values, 200_000, np.random.default_rng(1))
    empirical_cdf = np.searchsorted(np.sort(draws), support + 1e-9, side="right") / draws.size
    assert np.max(np.abs(empirical_cdf - np.cumsum(prob))) < 0.01
    exact_mean = float(np.sum(support * prob))
    exact_var = float(np.sum((support - exact_mean) ** 2 * prob))
    assert draws.mean() == pytest.approx(exact_mean, abs=0.02 * np.sqrt(exact_var))
    assert draws.var() == pytest.approx(exact_var, rel=0.03)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_interval_ends_are_the_brute_force_quantiles(name: str) -> None:
    values = DESIGNS[name]
    support, prob = exact_distribution(values)
    design = {p: {s: float(v) for s, v in enumerate(row)} for p, row in enumerate(values)}
    est = stats.hierarchical_bootstrap(design, n_resamples=200_000, seed=2)
    tol = 1e-9  # the support is rounded to 12 digits
    assert exact_quantile(support, prob, 0.02) - tol <= est.low <= exact_quantile(support, prob, 0.03) + tol
    assert exact_quantile(support, prob, 0.97) - tol <= est.high <= exact_quantile(support, prob, 0.98) + tol
    assert est.mean == pytest.approx(values.mean())
    assert (est.n_pretrain, est.n_finetune) == values.shape


def test_pretraining_spread_widens_the_interval_beyond_fine_tuning_seeds_alone() -> None:
    """Three pretraining runs far apart, fine-tuning seeds close within each: one level underestimates."""
    design = {0: {3: 10.0, 30: 10.5, 300: 11.0}, 1: {3: 20.0, 30: 20.5, 300: 21.0}, 2: {3: 30.0, 30: 30.5, 300: 31.0}}
    two_level = stats.hierarchical_bootstrap(design, seed=0)
    within_one = stats.hierarchical_bootstrap({0: design[1]}, seed=0)
    assert two_level.high - two_level.low > 10 * (within_one.high - within_one.low)


def test_paired_subtracts_cell_by_cell_and_refuses_mismatched_cells() -> None:
    a = {0: {3: 5.0, 30: 7.0}, 1: {3: 1.0, 30: 2.0}}
    b = {0: {3: 4.0, 30: 4.0}, 1: {3: 3.0, 30: 2.0}}
    assert stats.paired(a, b) == {0: {3: 1.0, 30: 3.0}, 1: {3: -2.0, 30: 0.0}}
    with pytest.raises(ValueError, match="seed cells"):
        stats.paired(a, {0: b[0], 2: b[1]})


def test_independent_difference_of_a_constant_shifts_the_interval() -> None:
    a = {0: {0: 1.0, 1: 3.0}, 1: {0: 6.0, 1: 9.0}}
    alone = stats.hierarchical_bootstrap(a, seed=5)
    diff = stats.independent_difference(a, {0: {0: 2.0, 1: 2.0}}, seed=5)
    assert diff.mean == pytest.approx(alone.mean - 2.0)
    assert diff.low == pytest.approx(alone.low - 2.0)
    assert diff.high == pytest.approx(alone.high - 2.0)


def test_unbalanced_or_empty_designs_are_refused() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        stats.as_array({0: {0: 1.0, 1: 2.0}, 1: {0: 3.0}})
    with pytest.raises(ValueError, match="empty"):
        stats.as_array({})
    with pytest.raises(ValueError, match="non-finite"):
        stats.as_array({0: {0: float("nan")}})


@pytest.mark.parametrize(("low", "high", "direction", "threshold", "expected"), [
    (0.5, 3.0, ">", 0.0, "holds"),
    (-3.0, -0.5, ">", 0.0, "contradicted"),
    (-1.0, 2.0, ">", 0.0, "inconclusive"),
    (-3.0, -0.5, "<", 0.0, "holds"),
    (0.5, 3.0, "<", 0.0, "contradicted"),
    (-1.5, 0.4, ">", -2.0, "holds"),      # within 2 points: a non-inferiority claim
    (-6.0, -2.5, ">", -2.0, "contradicted"),
    (-2.5, 1.0, ">", -2.0, "inconclusive"),
    (0.0, 1.0, ">", 0.0, "inconclusive"),  # an end on the threshold does not exclude it
    (float("nan"), float("nan"), ">", 0.0, "not measured"),
])
def test_verdict_rule(low: float, high: float, direction: str, threshold: float, expected: str) -> None:
    assert verdict(low, high, direction, threshold) == expected


def test_verdict_refuses_a_bad_direction_or_interval() -> None:
    with pytest.raises(ValueError, match="direction"):
        verdict(0.0, 1.0, ">=")
    with pytest.raises(ValueError, match="low end"):
        verdict(2.0, 1.0)
