"""Reuse the result of a deterministic stage when its inputs have not changed (as finished runs are reused).

A stage's result is stored as JSON next to the hash of everything it was computed from; a later call with
the same inputs reads it back instead of computing it again, and any change of input (a retrained
checkpoint, a rerun fine-tuning record, another budget) makes the hash differ, so the stage runs again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.util.io import atomic_write_json, sha256_json
from bench.util.logs import get_logger

T = TypeVar("T")
log = get_logger("cache")


def cached_stage(path: str | Path, inputs: dict[str, Any], compute: Callable[[], T],
                 dump: Callable[[T], Any], load: Callable[[Any], T]) -> tuple[T, bool]:
    """(result, reused): the stored result at `path` when it was made from these `inputs`, else `compute()`,
    stored atomically (dump: result -> JSON value; load: JSON value -> result)."""
    path = Path(path)
    key = sha256_json(inputs)
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable stage cache %s: %s", path, e)
            stored = {}
        if stored.get("inputs_sha256") == key:
            return load(stored["result"]), True
    result = compute()
    atomic_write_json(path, {"inputs_sha256": key, "inputs": inputs, "result": dump(result)})
    return result, False
