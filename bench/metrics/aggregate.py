"""Group aggregates (ODinW-13 / ODinW-35 mean and median of per-task AP).

The official ODinW numbers are the plain mean (and the median) of the member tasks' AP (the ELEVATER
benchmark's ODinW score; microsoft/GLIP writes only the per-task AP files). A mean over part of a group
is a different number, so this module never averages an incomplete set silently: the caller names the
expected members and the result says whether all of them were there.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any


def aggregate(
    per_task: Mapping[str, float], expected: Iterable[str] | None = None, partial: bool = False
) -> dict[str, Any]:
    """Mean and median of per-task values, NaN-safe, with completeness.

    per_task: task name -> value (0-100; NaN allowed). expected: the group's members; without it the
    group is whatever was passed. A member is missing when absent or NaN (not computable). When the
    set is incomplete, mean and median are NaN unless partial=True, in which case they are over the
    members that are there. Returns {"mean", "median", "n" (members averaged), "complete",
    "missing" (sorted), "extra" (passed but not expected, never averaged)}.
    """
    names = list(per_task) if expected is None else list(dict.fromkeys(expected))
    extra = sorted(set(per_task) - set(names))
    present: list[float] = []
    missing: list[str] = []
    for name in names:
        value = per_task.get(name)
        if value is None or math.isnan(float(value)):
            missing.append(name)
        else:
            present.append(float(value))
    complete = not missing and bool(names)
    use = present if (complete or partial) else []
    return {
        "mean": statistics.fmean(use) if use else math.nan,
        "median": float(statistics.median(use)) if use else math.nan,
        "n": len(use),
        "complete": complete,
        "missing": sorted(missing),
        "extra": extra,
    }
