"""Metrics: COCO box AP, LVIS AP and Fixed AP, Flickr30K recall@k, and group aggregates; open-vocabulary
novel/base AP (open_vocab.py) and referring-expression accuracy (refexp.py).

Every metric is computed by the official library (pycocotools, lvis-api) or by a re-implementation that
the tests check against the official one on generated fixtures: hotcoco (Rust, the default: 30-50x the
references' speed, docs/metrics.md). Only the Flickr30K recall, which has no
library, is our own code. Values are on a 0-100 scale and NaN where the library reports -1 (nothing to
measure, e.g. no ground truth in an area range).

    result = evaluate("coco_bbox", coco_dict, predictions)            # hotcoco
    result = evaluate("coco_bbox", coco_dict, predictions, backend="pycocotools")
    result.values["AP"], result.per_class["fish"]

Heavy imports (the libraries) happen inside `evaluate`, so importing this package is cheap.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from bench.metrics.aggregate import aggregate
from bench.util.errors import UserError, unknown_name
from bench.util.logs import get_logger

log = get_logger("metrics")

__all__ = ["BACKENDS", "BACKEND_NAMES", "DEFAULT_BACKEND", "METRICS", "MetricResult", "aggregate", "evaluate", "library_version"]


@dataclass
class MetricResult:
    """One metric's outcome on one split.

    primary: the key of `values` that leaderboards report ("AP" or "R@1").
    values: 0-100, NaN when not computable. per_class: AP per category name (detection metrics) or
    R@1 per phrase type (Flickr30K). backend: the backend that computed it ("hotcoco",
    "pycocotools", "lvis"); library: the package and version (for the record's provenance).
    """

    primary: str
    values: dict[str, float]
    per_class: dict[str, float] = field(default_factory=dict)
    backend: str = "hotcoco"
    library: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "values": dict(self.values),
            "per_class": dict(self.per_class),
            "backend": self.backend,
            "library": self.library,
        }


DEFAULT_BACKEND = "hotcoco"
# metric -> the backends it has. A metric with a single implementation (Flickr recall: our own numpy code)
# accepts every name and records the one asked for.
BACKENDS: dict[str, tuple[str, ...]] = {
    "coco_bbox": ("hotcoco", "pycocotools"),
    "lvis_fixed_ap": ("hotcoco", "lvis"),
    "lvis_bbox": ("hotcoco", "lvis"),
    "flickr_recall": ("hotcoco", "numpy"),
    "ov_coco_bbox": ("hotcoco", "pycocotools"),  # bench.metrics.open_vocab
    "ov_lvis_fixed_ap": ("hotcoco", "lvis"),
    "rec_accuracy": ("hotcoco", "numpy"),  # bench.metrics.refexp (our numpy code, as flickr_recall)
    "grec_accuracy": ("hotcoco", "numpy"),
}
METRICS: tuple[str, ...] = tuple(BACKENDS)
BACKEND_NAMES: tuple[str, ...] = ("hotcoco", "pycocotools", "lvis")  # what --metric-backend takes
# backends glip-bench no longer ships, with why and what equals them (a record may still name one)
RETIRED_BACKENDS: dict[str, str] = {
    "faster": "faster-coco-eval was dropped (hotcoco was 15x faster on COCO and 5x on LVIS in the same runs, "
              "used 4.6-5.8x less memory, and equals pycocotools / lvis-api where faster-coco-eval differed in the "
              "last digits; docs/metrics.md): rescore with --metric-backend hotcoco",
}
# options each metric accepts through evaluate(**options)
OPTIONS: dict[str, tuple[str, ...]] = {
    "coco_bbox": (),
    "lvis_fixed_ap": ("max_dets_per_class",),
    "lvis_bbox": ("max_dets",),
    "flickr_recall": ("merged", "iou_thresh"),
    "ov_coco_bbox": (),
    "ov_lvis_fixed_ap": ("max_dets_per_class",),
    "rec_accuracy": ("iou_thresh",),
    "grec_accuracy": ("iou_thresh", "score_thresh"),
}


def evaluate(
    metric: str, gt: Any, predictions: Sequence[Mapping[str, Any]], backend: str = DEFAULT_BACKEND, **options: Any
) -> MetricResult:
    """Score `predictions` against `gt` with `metric` (docs/formats.md, section 2, has the formats).

    gt: a COCO/LVIS-format dict (or an object with a `.coco` dict, e.g. DetectionDataset) for the
    detection metrics; a list of Flickr entries (or an object with `.entities`) for flickr_recall.
    """
    if metric not in BACKENDS:
        raise unknown_name("metric", metric, METRICS)
    if backend in RETIRED_BACKENDS:
        raise UserError(f"metric backend {backend!r}: {RETIRED_BACKENDS[backend]}")
    if backend not in BACKENDS[metric]:
        raise unknown_name(f"backend for metric {metric!r}", backend, BACKENDS[metric])
    bad = sorted(set(options) - set(OPTIONS[metric]))
    if bad:
        valid = ", ".join(OPTIONS[metric]) or "none"
        raise UserError(f"metric {metric!r} got unknown option(s) {bad}; valid options: {valid}")
    if metric.startswith("ov_"):
        from bench.metrics import open_vocab

        return getattr(open_vocab, metric)(_detection_gt(gt, metric), predictions, backend=backend, **options)
    if metric in ("rec_accuracy", "grec_accuracy"):
        from bench.metrics import refexp

        return getattr(refexp, metric)(getattr(gt, "entities", gt), predictions, backend=backend, **options)
    if metric == "coco_bbox":
        from bench.metrics.coco import coco_bbox

        return coco_bbox(_detection_gt(gt, metric), predictions, backend=backend)
    if metric in ("lvis_fixed_ap", "lvis_bbox"):
        from bench.metrics import lvis

        fn = lvis.lvis_fixed_ap if metric == "lvis_fixed_ap" else lvis.lvis_bbox
        return fn(_detection_gt(gt, metric), predictions, backend=backend, **options)
    from bench.metrics.flickr import flickr_recall

    entries = getattr(gt, "entities", gt)
    return flickr_recall(entries, predictions, backend=backend, **options)


def _detection_gt(gt: Any, metric: str) -> dict[str, Any]:
    """The COCO-format dict behind `gt` (a dict, or a data set object carrying one as `.coco`)."""
    data = getattr(gt, "coco", gt)
    if not isinstance(data, Mapping):
        raise UserError(
            f"metric {metric!r} needs a COCO-format ground-truth dict (or a data set with .coco), "
            f"got {type(gt).__name__}"
        )
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise UserError(
                f"ground truth for {metric!r} has no {key!r} list: not a COCO-format annotation dict"
            )
    return dict(data)


# ---------------------------------------------------------------------------- helpers for the modules


def library_version(package: str) -> str:
    """'name version' of an installed package, for provenance."""
    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:  # pragma: no cover - the package was importable
        return package


def nan_if_negative(value: float) -> float:
    """The libraries report -1 for 'nothing to measure'; we report NaN. Others are scaled to 0-100."""
    value = float(value)
    return math.nan if value < 0 else 100.0 * value


def class_keys(categories: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Category id -> the key used in per_class (its name; the id is appended if names repeat)."""
    names = [str(c.get("name", c["id"])) for c in categories]
    repeated = {n for n in names if names.count(n) > 1}
    return {int(c["id"]): (f"{n} (id {c['id']})" if n in repeated else n) for c, n in zip(categories, names)}


class _ToDebug(logging.Handler):
    """Re-emits a library's log records on our logger at DEBUG."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("%s: %s", record.name, record.getMessage())


@contextlib.contextmanager
def quiet_library(*logger_names: str) -> Iterator[None]:
    """Capture what a metric library prints or logs and pass it on at DEBUG.

    pycocotools prints progress to stdout and lvis-api logs at INFO/WARNING (and uses the deprecated
    Logger.warn); none of it is an error, so it is demoted, not dropped. Restores everything on exit.
    """
    loggers = [logging.getLogger(n) for n in logger_names]
    saved = [(lg.propagate, lg.level) for lg in loggers]
    handler = _ToDebug()
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
        lg.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="The 'warn' method is deprecated", category=DeprecationWarning
            )
            yield
    finally:
        for lg, (propagate, level) in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.propagate = propagate
            lg.setLevel(level)
        text = buffer.getvalue().strip()
        if text:
            log.debug("metric library output:\n%s", text)
