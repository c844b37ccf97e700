"""Extra metrics: computed from saved predictions on top of a task's own metric, by name.

Each is one module in bench/metrics with NAME, DEFINITION (a sentence kept in the record) and
`compute(gt, predictions, backend, **options) -> MetricResult`; adding one is adding a module and a line
here. Tasks name them in `extra_metrics` (bench/tasks), and `glip-bench score --metric a,b` adds them to
a finished run's record (record["metrics"]["extra"][name]: values, definition, backend, library) without
inference.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from bench.util.errors import UserError, unknown_name

# name -> module (imported when used)
EXTRA_METRICS: dict[str, str] = {
    "nms-ap": "bench.metrics.nms_ap",
    "f1": "bench.metrics.f1",
    "tide": "bench.metrics.tide",
    "per-class": "bench.metrics.per_class",
}


def check_names(names: Iterable[str], where: str = "extra metric") -> list[str]:
    """The names, each checked against EXTRA_METRICS (UserError naming the valid ones)."""
    out = []
    for name in names:
        if name not in EXTRA_METRICS:
            raise unknown_name(where, name, tuple(EXTRA_METRICS))
        out.append(name)
    return out


def parse_list(text: str) -> list[str]:
    """'nms-ap,f1' -> ['nms-ap', 'f1'], checked; duplicates dropped."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"--metric needs one or more of {', '.join(EXTRA_METRICS)}, comma-separated")
    return check_names(dict.fromkeys(names))


def compute_extra(name: str, gt: Any, predictions: Any, backend: str, base: str | None = None,
                  options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One extra metric as the record keeps it: values, per_class, definition, backend, library.

    base: the task's own AP metric, for the modules that score AP after a change (nms-ap, per-class):
    an LVIS task's NMS-AP is LVIS AP after the suppression. Default: COCO box AP.
    options: keyword settings of the metric's `compute` (f1: score_threshold), kept in the record.
    """
    module = importlib.import_module(EXTRA_METRICS[check_names([name])[0]])
    gt = getattr(gt, "coco", gt)
    if not isinstance(gt, dict) or "annotations" not in gt:
        raise UserError(f"metric {name!r} needs a COCO-format ground truth (a detection task)")
    params = inspect.signature(module.compute).parameters
    settings = dict(options or {})
    unknown = sorted(k for k in settings if k not in params or k in ("gt", "predictions", "backend", "base"))
    if unknown:
        raise UserError(f"metric {name!r} takes no setting {', '.join(unknown)}")
    kwargs = {"base": base} if base and "base" in params else {}
    result = module.compute(gt, predictions, backend=backend, **kwargs, **settings)
    out = {"definition": module.DEFINITION, **result.to_dict()}
    return {**out, "options": settings} if settings else out
