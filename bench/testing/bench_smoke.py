"""Benchmark sizes: the real ones, or tiny ones under GLIP_BENCH_SMOKE=1.

`nox -s bench` measures at the sizes the README quotes; the smoke mode (GLIP_BENCH_SMOKE=1, run by
tests/benchmarks/test_bench_smoke.py with --benchmark-disable) runs every benchmark once at sizes that take
seconds, so an API change that breaks a benchmark fails the normal test suite instead of the next
`nox -s bench`. Smoke numbers mean nothing; only that the code runs.
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")
ENV = "GLIP_BENCH_SMOKE"


def smoke() -> bool:
    """Whether the benchmarks run in smoke mode (tiny sizes, no measurement)."""
    return os.environ.get(ENV, "") not in ("", "0")


def sized(full: T, tiny: T) -> T:
    """`full` for a real benchmark, `tiny` in smoke mode."""
    return tiny if smoke() else full
