"""Predictions -> metrics: from memory (as they would read back from the file) or from a run's saved file."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.metrics import DEFAULT_BACKEND, MetricResult, evaluate
from bench.metrics.detections import COLUMNS, detection_rows
from bench.results import store
from bench.util.errors import UserError

__all__ = ["DEFAULT_BACKEND", "gc_paused", "ground_truth", "score", "score_saved"]  # DEFAULT_BACKEND: hotcoco


def ground_truth(task: Any, dataset: Any) -> Any:
    from bench.tasks.task import GROUNDING_FORMATS

    return dataset.entities if task.format in GROUNDING_FORMATS else dataset.coco


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (restored after), for bursts of short-lived objects.

    Scoring parses the predictions and the metric library copies them: a few containers per detection,
    all freed by reference counting when scoring returns. With the collector on, the ones alive at a
    collection get promoted, and enough promotions trigger a full collection, which walks every object
    of the process (torch, transformers: ~400k, ~0.2 s each; about one per zero-shot pass over the
    synthetic suite). Off, nothing is promoted, so that work is skipped rather than postponed; the few
    reference cycles made meanwhile (< 100 objects in a whole pass over that suite) are collected later
    as usual. Process-wide: meant for single-threaded stretches such as scoring.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def score(task: Any, dataset: Any, predictions: list[dict[str, Any]], backend: str) -> MetricResult:
    """MetricResult of predictions that went through JSON (so a rescore from the file gives the same numbers)."""
    as_saved = orjson.loads(orjson.dumps(predictions))  # store.write_predictions' encoding
    return evaluate(task.metric, ground_truth(task, dataset), as_saved, backend=backend)


def score_saved(task: Any, dataset: Any, folder: str | Path, backend: str) -> MetricResult:
    """MetricResult of a run's saved predictions file: the numbers a rescore gives, by construction.

    Reading the file back (gunzip + parse) replaces `score`'s JSON round trip, so the predictions are
    encoded once per run, not twice. A detection file is parsed piece by piece into one (N, 7) array
    (`read_prediction_rows`: 56 bytes a detection, not a dict of ~550), which the metric reads as it
    would the list; anything that array path cannot take (another layout, a bad entry, a metric that
    wants dicts) is read and named the old way, as a list.
    """
    with gc_paused():
        rows = read_prediction_rows(folder) if task.metric in ARRAY_METRICS else None
        try:
            if rows is not None:
                try:
                    return evaluate(task.metric, ground_truth(task, dataset), rows, backend=backend)
                except UserError:
                    pass  # a bad entry: the list path below names it as it always has
            del rows
            preds = store.read_predictions(folder)
            return evaluate(task.metric, ground_truth(task, dataset), preds, backend=backend)
        except UserError as err:  # a bad entry: name the run whose file holds it
            raise UserError(f"run {Path(folder).name} ({folder}): {err}") from None


ARRAY_METRICS = ("coco_bbox", "lvis_bbox", "lvis_fixed_ap", "ov_lvis_fixed_ap")  # take an (N, 7) array as a list
_ENTRY = b'{"image_id":'  # how write_predictions starts every detection entry
PIECE_BYTES = 1 << 22  # JSON parsed per piece (~40,000 detections): the dicts alive at once


def read_prediction_rows(folder: str | Path) -> np.ndarray | None:
    """A detection run's predictions file as (N, 7) rows (bench.metrics.detections), parsed ~4 MB at a time,
    or None when the file is not a list of plain numeric entries in `write_predictions`' layout.

    The rows are those `detection_array` builds from the whole parsed list (the same float64 values, in
    file order); only the parsed dicts alive at once are bounded. The cuts fall before a `,{"image_id":`,
    which in this layout starts an entry; one inside a string would leave that piece unparseable, and then
    the caller reads the file whole.
    """
    _, data = store.predictions_bytes(folder)
    data = memoryview(data)
    end = len(data)
    while end and data[end - 1] in b" \n\r\t":
        end -= 1
    if bytes(data[:1]) != b"[" or bytes(data[end - 1:end]) != b"]":
        return None
    if not bytes(data[1:end - 1]).strip():
        return np.zeros((0, len(COLUMNS)))
    if bytes(data[1:1 + len(_ENTRY)]) != _ENTRY:
        return None
    raw = data.obj
    pieces, start, last = [], 1, end - 1
    while start < last:
        cut = raw.find(b"," + _ENTRY, start + PIECE_BYTES, last)
        stop = last if cut < 0 else cut
        try:
            entries = orjson.loads(b"[" + bytes(data[start:stop]) + b"]")
        except orjson.JSONDecodeError:
            return None
        rows = detection_rows(entries)
        if rows is None:
            return None
        pieces.append(rows)
        start = stop + 1
    return np.concatenate(pieces)


def extra_metrics(names: list[str] | tuple[str, ...], task: Any, dataset: Any, folder: str | Path,
                  backend: str, options: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """record["metrics"]["extra"] entries of a run: each named extra metric of its saved predictions file.

    options: per metric name, settings of its `compute` (f1: {"score_threshold": t}).
    """
    from bench.metrics.extras import check_names, compute_extra

    if not names:
        return {}
    if task.format == "mdetr_flickr":
        raise UserError(f"task {task.name} is a grounding task: extra metrics ({', '.join(names)}) need boxes "
                        "with classes")
    with gc_paused():
        preds = store.read_predictions(folder)
        try:
            return {name: compute_extra(name, ground_truth(task, dataset), preds, backend, base=task.metric,
                                        options=(options or {}).get(name))
                    for name in check_names(names)}
        except UserError as err:
            raise UserError(f"run {Path(folder).name} ({folder}): {err}") from None


def add_extra_metrics(folder: str | Path, names: list[str], data_root: str | Path | None = None,
                      metric_backend: str | None = None, f1_threshold: float | None = None,
                      f1_threshold_from: str | Path | None = None) -> dict[str, Any]:
    """Add (or recompute) extra metrics in a finished run's record from its saved predictions; no inference.

    f1_threshold / f1_threshold_from: f1's operating point, a score or the best-F1 score of another run of the
    same model on another split (bench.runs.operating_point); both kept in the record's f1 entry.
    The record's own metric is left as it is; the record is rewritten atomically.
    """
    from bench.results.records import RunSpec
    from bench.runs.stages import now
    from bench.tasks.registry import get_task

    folder = Path(folder)
    record = store.load_record(folder / store.RECORD)
    if record is None:
        raise UserError(f"{folder} holds no valid record.json")
    task = get_task(RunSpec.from_dict(record["spec"]).task)
    backend = metric_backend or record["provenance"].get("metric_backend") or DEFAULT_BACKEND
    dataset = task.load(record["task"]["split"], data_root)
    options, source = {}, None
    if f1_threshold is not None or f1_threshold_from is not None:
        from bench.runs.operating_point import f1_operating_point

        threshold, source = f1_operating_point(names, record, dataset, f1_threshold, f1_threshold_from, data_root,
                                               backend)
        options["f1"] = {"score_threshold": threshold}
    added = extra_metrics(names, task, dataset, folder, backend, options)
    if source is not None:
        added["f1"]["threshold_from"] = source
    extra = dict(record["metrics"].get("extra", {}))
    extra.update(added)
    record["metrics"]["extra"] = extra
    record["rescored_at"] = now()
    store.write_record(folder, record)
    return record
