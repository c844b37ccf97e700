"""The verdict of a claim, read off its interval by one rule (stated in the claims table's header)."""

from __future__ import annotations

import math

RULE = ("a claim says the effect lies above (>) or below (<) a threshold; it holds when the whole 95% interval "
        "lies on the claimed side, is contradicted when the whole interval lies on the other side, and is "
        "inconclusive when the interval contains the threshold")
VERDICTS = ("holds", "contradicted", "inconclusive", "not measured")


def verdict(low: float, high: float, direction: str = ">", threshold: float = 0.0) -> str:
    """holds / contradicted / inconclusive from the interval [low, high]; "not measured" without one."""
    if direction not in (">", "<"):
        raise ValueError(f"direction must be '>' or '<', got {direction!r}")
    if math.isnan(low) or math.isnan(high):
        return "not measured"
    if low > high:
        raise ValueError(f"interval [{low}, {high}] has its low end above its high end")
    above, below = low > threshold, high < threshold
    if above:
        return "holds" if direction == ">" else "contradicted"
    if below:
        return "holds" if direction == "<" else "contradicted"
    return "inconclusive"
