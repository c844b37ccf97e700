"""A split's detections, image by image, into the run's predictions file, in bounded memory.

Adapters hand back each image's detections as it finishes (`DetectorAdapter.detect_images`: image id and an
(N, 7) float64 array, rows [image_id, x, y, w, h, score, category_id] as bench.metrics.detections reads them),
and one `DetectionCollector` turns them into the predictions file of docs/formats.md, entries in the order
of the split's image ids and, within an image, in the adapter's order (by score), as the list the adapters
returned before did. What it holds, by task:

- per-image cap (COCO AP, LVIS AP): nothing beyond the image in hand. An image that comes in the split's
  order is encoded and compressed into the file at once; one that comes early (the GLIP engine batches
  images of one input size together) waits in a spool file on disk, binary rows, until its turn.
- Fixed AP (no per-image cap; the metric keeps each class's `per_class_cap` best over the split): the
  rows live in numpy arrays, and whenever the new ones outnumber the kept ones (at least `prune_at`),
  each class is cut to its `per_class_cap` best. Memory is bounded by the protocol (classes x 10,000
  rows of 72 bytes), not by images x prompt chunks. The file is written at the end from what is kept.

Fixed-AP order and ties: the metric (bench.metrics.lvis.lvis_fixed_ap -> detections.top_per_class) keeps per
class the highest scores and, among equal scores, the earlier entries of the file, as MDETR's
`sorted(dets, key=score, reverse=True)[:10000]` (a stable sort) does. The collector ranks with the same
total order, (score descending, image position in the split, row within the image), so cutting early
and cutting once at the end keep the same rows, and they are written in file order. Scoring that file
then finds no class over the cap and hands the metric library exactly the array it would have built
from the whole list: the numbers are identical (tests/bench/runs/test_collect.py).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics.detections import CATEGORY, COLUMNS, SCORE, as_dicts
from bench.results import store
from bench.util.io import user_write

PRUNE_AT = 1 << 18  # Fixed AP: cut the classes once at least this many new rows wait (and as many as are kept)
WRITE_ROWS = 1 << 14  # rows encoded per JSON piece when writing the kept Fixed-AP rows


class DetectionCollector:
    """The predictions file of `image_ids` (every one must be added once), written to `folder`.

    per_class_cap: Fixed AP's per-class cap (None: a per-image-capped task, streamed). Use as a context
    manager: leaving it by an exception removes every temp file, so no predictions file appears.
    `seconds`: time spent here (encoding, compressing, cutting), which the run's inference time excludes.
    """

    def __init__(self, folder: str | os.PathLike, image_ids: Sequence[int], per_class_cap: int | None = None,
                 *, prune_at: int = PRUNE_AT) -> None:
        if per_class_cap is not None and per_class_cap < 1:
            raise ValueError(f"per_class_cap must be >= 1, got {per_class_cap}")
        self.folder = Path(folder)
        self.position = {int(i): k for k, i in enumerate(image_ids)}
        if len(self.position) != len(image_ids):
            raise ValueError("the split lists an image id more than once")
        self.cap, self.prune_at = per_class_cap, prune_at
        self.seen = np.zeros(len(self.position), dtype=bool)
        self.seconds = 0.0
        self.writer = store.PredictionsWriter(store.predictions_path(self.folder))
        self._spool: Any = None  # per-image mode: early images' rows, binary
        self._spooled: dict[int, tuple[int, int]] = {}  # position -> (byte offset, rows) in the spool
        self._next = 0  # per-image mode: the position whose entries go into the file next
        self._kept = _Rows.empty()  # Fixed-AP mode: rows kept so far, in file order
        self._new: list[_Rows] = []
        self._new_rows = 0

    # ----------------------------------------------------------------------------------- adding
    def add(self, image_id: int, rows: np.ndarray) -> None:
        """One image's detections, (N, 7) rows in the order the file lists them."""
        start = time.perf_counter()
        pos = self.position.get(int(image_id))
        if pos is None:
            raise ValueError(f"image {image_id} is not in the split being predicted")
        if self.seen[pos]:
            raise ValueError(f"image {image_id} was predicted twice")
        self.seen[pos] = True
        rows = np.ascontiguousarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
        if self.cap is None:
            self._stream(pos, rows)
        else:
            self._keep(pos, rows)
        self.seconds += time.perf_counter() - start

    def add_entries(self, image_id: int, entries: list[dict[str, Any]]) -> None:
        """One image's detections as COCO result dicts (shard files hold them so)."""
        rows = [(d["image_id"], *d["bbox"], d["score"], d["category_id"]) for d in entries]
        self.add(image_id, np.array(rows, dtype=np.float64).reshape(-1, len(COLUMNS)))

    def _stream(self, pos: int, rows: np.ndarray) -> None:
        if pos != self._next:
            self._spool_rows(pos, rows)
            return
        self.writer.write(as_dicts(rows))
        self._next += 1
        while self._next in self._spooled:  # images that came early and are now due
            self.writer.write(as_dicts(self._unspool(self._next)))
            self._next += 1

    def _spool_rows(self, pos: int, rows: np.ndarray) -> None:
        if self._spool is None:
            with user_write(self.folder):
                fd, name = tempfile.mkstemp(dir=self.folder, prefix=".predictions.spool.", suffix=".tmp")
            self._spool = os.fdopen(fd, "w+b")
            self._spool_name = Path(name)
        self._spool.seek(0, os.SEEK_END)
        self._spooled[pos] = (self._spool.tell(), len(rows))
        with user_write(self._spool_name):
            self._spool.write(rows.tobytes())

    def _unspool(self, pos: int) -> np.ndarray:
        offset, n = self._spooled.pop(pos)
        self._spool.seek(offset)
        data = self._spool.read(n * len(COLUMNS) * 8)
        return np.frombuffer(data, dtype=np.float64).reshape(n, len(COLUMNS))

    def _keep(self, pos: int, rows: np.ndarray) -> None:
        bad = ~np.isfinite(rows[:, SCORE])
        if bad.any():  # a NaN score would sort anywhere; say so rather than keep or drop it silently
            raise ValueError(f"image {rows[0, 0]:.0f}: a detection has the score {rows[bad][0, SCORE]}")
        self._new.append(_Rows(rows, np.full(len(rows), pos, dtype=np.int64), np.arange(len(rows), dtype=np.int64)))
        self._new_rows += len(rows)
        if self._new_rows >= max(self.prune_at, len(self._kept)):
            self._prune()

    def _prune(self) -> None:
        self._kept = _Rows.concat([self._kept, *self._new]).top_per_class(self.cap)
        self._new, self._new_rows = [], 0

    # ----------------------------------------------------------------------------------- ending
    def finish(self) -> int:
        """Write what is left, move the file into place; the number of detections in it."""
        start = time.perf_counter()
        missing = np.flatnonzero(~self.seen)
        if missing.size:
            ids = list(self.position)
            raise RuntimeError(f"{missing.size} images of the split were not predicted, e.g. {ids[missing[0]]}")
        if self.cap is not None:
            self._prune()
            for k in range(0, len(self._kept), WRITE_ROWS):
                self.writer.write(as_dicts(self._kept.rows[k:k + WRITE_ROWS]))
        self.writer.commit()
        self._close_spool()
        self.seconds += time.perf_counter() - start
        return self.writer.count

    def discard(self) -> None:
        """Remove the temp files: an interrupted prediction leaves no predictions file."""
        self.writer.discard()
        self._close_spool()

    def _close_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool_name.unlink(missing_ok=True)
            self._spool = None

    def __enter__(self) -> DetectionCollector:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is not None:
            self.discard()


class _Rows:
    """Rows with their place in the file: position of the image in the split, row within the image."""

    def __init__(self, rows: np.ndarray, pos: np.ndarray, row: np.ndarray) -> None:
        self.rows, self.pos, self.row = rows, pos, row  # [N, 7], [N], [N]

    @staticmethod
    def empty() -> _Rows:
        return _Rows(np.zeros((0, len(COLUMNS))), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @staticmethod
    def concat(parts: Sequence[_Rows]) -> _Rows:
        return _Rows(np.concatenate([p.rows for p in parts]), np.concatenate([p.pos for p in parts]),
                     np.concatenate([p.row for p in parts]))

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, index: np.ndarray) -> _Rows:
        return _Rows(self.rows[index], self.pos[index], self.row[index])

    def top_per_class(self, cap: int) -> _Rows:
        """Each class's `cap` first rows by (score descending, file order), in file order."""
        cats, scores = self.rows[:, CATEGORY], self.rows[:, SCORE]
        order = np.lexsort((self.row, self.pos, -scores, cats))  # by class, then rank
        sorted_cats = cats[order]
        starts = np.flatnonzero(np.r_[True, sorted_cats[1:] != sorted_cats[:-1]])  # first row of each class
        counts = np.diff(np.r_[starts, len(order)])
        rank = np.arange(len(order)) - np.repeat(starts, counts)
        kept = order[rank < cap]
        return self.take(kept[np.lexsort((self.row[kept], self.pos[kept]))])  # back to file order
