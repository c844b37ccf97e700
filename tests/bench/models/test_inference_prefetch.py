"""The background-thread prefetch of bench/models/batching.py: same batches, errors surface, no hang."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from test_inference import _dataset

from bench.models.batching import image_batches, prefetched
from bench.util.errors import UserError
from glip.config import get_preset

WAIT_S = 30.0  # a consumer that has not finished by then is taken to hang


def _finishes(fn: Callable[[], Any]) -> Any:
    """fn() run in a helper thread; fails the test (instead of hanging it) if fn does not return in time."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 -- re-raised below, in the test's thread
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(WAIT_S)
    assert not t.is_alive(), f"no result after {WAIT_S} s: the consumer hangs"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "glip-prefetch"]


def _failing(n_good: int) -> Iterator[int]:
    yield from range(n_good)
    raise ValueError("boom in the loader")


def test_prefetched_keeps_order():
    assert _finishes(lambda: list(prefetched(iter(range(50)), depth=2))) == list(range(50))
    assert _finishes(lambda: list(prefetched(iter([])))) == []


@pytest.mark.parametrize("n_good", [0, 3])
def test_loader_exception_is_raised_in_the_consumer(n_good):
    got: list[int] = []

    def consume() -> None:
        for x in prefetched(_failing(n_good)):
            got.append(x)

    with pytest.raises(ValueError, match="boom in the loader"):
        _finishes(consume)
    assert got == list(range(n_good))  # everything before the failure arrived, in order
    assert not _prefetch_threads()


def test_closing_early_stops_the_thread():
    produced: list[int] = []

    def endless() -> Iterator[int]:
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1

    def first_two() -> list[int]:
        gen = prefetched(endless(), depth=1)
        items = [next(gen), next(gen)]
        gen.close()
        return items

    assert _finishes(first_two) == [0, 1]
    assert not _prefetch_threads() and len(produced) <= 4  # at most depth + 1 ahead, then it stopped


def test_image_batches_prefetch_equals_plain(tmp_path):
    ds = _dataset(tmp_path)
    cfg = get_preset("glip-tiny")
    keys = ds.image_ids
    plan = [[0, 1], [2], [3, 4, 5], [6, 7]]

    def batches(prefetch: bool) -> list:
        return list(image_batches(ds.load_image, keys, plan, cfg, num_workers=0, prefetch=prefetch))

    plain, ahead = batches(False), _finishes(lambda: batches(True))
    assert [k for k, _ in plain] == [k for k, _ in ahead] == [[keys[p] for p in b] for b in plan]
    for (_, a), (_, b) in zip(plain, ahead):
        assert torch.equal(a.tensor, b.tensor) and a.image_sizes == b.image_sizes
        assert a.original_sizes == b.original_sizes


def test_missing_image_raises_its_user_error(tmp_path):
    ds = _dataset(tmp_path)
    ds.images[5].path.unlink()
    cfg = get_preset("glip-tiny")
    plan = [[k] for k in range(len(ds.images))]
    with pytest.raises(UserError, match="image file not found"):
        _finishes(lambda: list(image_batches(ds.load_image, ds.image_ids, plan, cfg, num_workers=0, prefetch=True)))
    assert not _prefetch_threads()
