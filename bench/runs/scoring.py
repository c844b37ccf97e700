"""Predictions -> metrics: from memory (as they would read back from the file) or from a run's saved file."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from bench.metrics import MetricResult, evaluate
from bench.results import store
from bench.util.errors import UserError

DEFAULT_BACKEND = "faster"  # faster-coco-eval; the official libraries give the same numbers (tests/bench/metrics)


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
    encoded once per run, not twice.
    """
    with gc_paused():
        preds = store.read_predictions(folder)
        try:
            return evaluate(task.metric, ground_truth(task, dataset), preds, backend=backend)
        except UserError as err:  # a bad entry: name the run whose file holds it
            raise UserError(f"run {Path(folder).name} ({folder}): {err}") from None
