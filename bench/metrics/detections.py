"""Detections as one validated (N, 7) float64 array, the form every scorer reads.

Rows are [image_id, x, y, w, h, score, category_id] (COCO xywh), the column order of pycocotools'
loadNumpyAnnotations, which hotcoco's load_res also takes: a LVIS-size split (millions of detections) costs
56 bytes each here instead of ~550 as a dict, and the checks run on whole columns. The checks are those a
scorer needs and the libraries do not make (bench.metrics.coco.clean_detections has them entry by entry and
still gives the messages): numbers only, finite, w and h >= 0, image and category ids in the ground truth.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.util.errors import UserError

COLUMNS = ("image_id", "x", "y", "w", "h", "score", "category_id")
IMAGE, SCORE, CATEGORY = 0, 5, 6
_EXACT = float(2**53)  # ids beyond it do not survive float64


def detection_array(predictions: Any, gt: Mapping[str, Any]) -> np.ndarray:
    """(N, 7) float64 of `predictions` (dicts as in docs/formats.md, or such an array), checked against `gt`.

    Raises UserError naming the first bad entry, with the message of the entry-by-entry check.
    """
    arr = predictions if isinstance(predictions, np.ndarray) else detection_rows(predictions)
    if arr is None:  # something only the entry-by-entry path can parse or name (a string id, a bad entry)
        return _slow(predictions, gt)
    if arr.ndim != 2 or arr.shape[1] != len(COLUMNS):
        raise UserError(f"a predictions array must be (N, {len(COLUMNS)}) {list(COLUMNS)}, got shape {arr.shape}")
    if arr is predictions:  # the caller's array is not changed
        arr = np.array(arr, dtype=np.float64)
    bad = _bad_rows(arr, gt)
    if bad.size:
        i = int(bad[0])
        from bench.metrics.coco import clean_detections

        entry = _entry(predictions[i]) if isinstance(predictions, np.ndarray) else predictions[i]
        try:
            clean_detections([entry], gt)
        except UserError as err:
            raise UserError(str(err).replace("prediction #0", f"prediction #{i}", 1)) from None
        raise UserError(f"prediction #{i} is invalid: {entry!r}")  # pragma: no cover - both paths agree
    return arr


def _entry(row: np.ndarray) -> dict[str, Any]:
    """A row as a detection dict without conversions (it may hold NaN ids), for an error message."""
    v = row.tolist()
    return {"image_id": v[IMAGE], "category_id": v[CATEGORY], "bbox": v[1:5], "score": v[SCORE]}


def detection_rows(predictions: Sequence[Any]) -> np.ndarray | None:
    """The (N, 7) array of plain numeric dict entries (not checked against a ground truth), or None when any
    entry needs the entry-by-entry path."""
    try:
        rows = [(d["image_id"], *d["bbox"], d["score"], d["category_id"]) for d in predictions]
    except (KeyError, TypeError, IndexError):
        return None
    if not rows:
        return np.zeros((0, len(COLUMNS)))
    if {len(r) for r in rows} != {len(COLUMNS)}:
        return None
    if not set(map(type, itertools.chain.from_iterable(rows))) <= {int, float}:  # no bool, str, None
        return None
    return np.array(rows, dtype=np.float64)


def _bad_rows(arr: np.ndarray, gt: Mapping[str, Any]) -> np.ndarray:
    """Indices of rows that break a check, in order."""
    image_ids = np.array([int(i["id"]) for i in gt["images"]], dtype=np.float64)
    cat_ids = np.array([int(c["id"]) for c in gt["categories"]], dtype=np.float64)
    values = arr[:, 1:SCORE + 1]
    bad = ~np.isfinite(values).all(axis=1)
    bad |= (arr[:, 3] < 0) | (arr[:, 4] < 0)
    bad |= np.abs(arr[:, [IMAGE, CATEGORY]]).max(axis=1, initial=0) >= _EXACT
    for col in (IMAGE, CATEGORY):  # ids are integers (1.0 is, 1.5 is not: no silent truncation)
        bad |= arr[:, col] != np.floor(arr[:, col])
    bad |= ~_member(arr[:, IMAGE], image_ids)
    bad |= ~_member(arr[:, CATEGORY], cat_ids)
    return np.flatnonzero(bad)


def _member(values: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """[N] bool: values[i] in allowed (a binary search in the few allowed ids; np.isin sorts both sides)."""
    allowed = np.unique(allowed)
    if not len(allowed):
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(allowed, values), len(allowed) - 1)
    return allowed[pos] == values


def _slow(predictions: Sequence[Any], gt: Mapping[str, Any]) -> np.ndarray:
    from bench.metrics.coco import clean_detections

    dets = clean_detections(predictions, gt)
    return np.array([(d["image_id"], *d["bbox"], d["score"], d["category_id"]) for d in dets],
                    dtype=np.float64).reshape(-1, len(COLUMNS))


def as_dicts(arr: np.ndarray) -> list[dict[str, Any]]:
    """Fresh detection dicts of the rows (for the libraries that take no arrays; they mutate their input)."""
    return [{"image_id": int(r[0]), "category_id": int(r[6]), "bbox": r[1:5], "score": r[5]} for r in arr.tolist()]


def top_per_class(arr: np.ndarray, cap: int) -> np.ndarray:
    """The rows of each category's `cap` highest scores (ties: earlier first), in input order."""
    if cap < 1:
        raise UserError(f"max_dets_per_class must be >= 1, got {cap}")
    return _top_per_group(arr, CATEGORY, cap)


def _top_per_group(arr: np.ndarray, column: int, cap: int) -> np.ndarray:
    """The rows of each value of `column`'s `cap` highest scores (ties: earlier first), in input order."""
    n = len(arr)
    _, group, counts = np.unique(arr[:, column], return_inverse=True, return_counts=True)
    if not n or counts.max() <= cap:
        return arr  # no group over the cap (LVIS minival's Fixed AP, mostly): nothing to sort
    order = np.lexsort((-arr[:, SCORE], group))  # by group, then score descending; lexsort is stable: ties in input order
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.arange(n) - np.repeat(starts, counts)  # position within its group
    return arr[np.sort(order[rank < cap])]


def cap_per_image(arr: np.ndarray, cap: int) -> np.ndarray:
    """The rows of each image's `cap` highest scores (ties: earlier first), in input order; cap < 0: all."""
    if cap < 0 or not len(arr):
        return arr
    return _top_per_group(arr, IMAGE, cap)
