"""Feeding images to a model: batches of similar shapes, worker processes that decode them, and a
background thread that keeps the next batch ready while the model runs (bench.models.glip uses these).

Neither the batching nor the workers change a number: the batches pad as the model would, and the order
of the predictions is the split's.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import torch

from bench.util.errors import UserError
from glip.structures import ImageBatch
from glip.transforms import resize_and_pad, resized_size

T = TypeVar("T")


def plan_batches(sizes: Sequence[tuple[int, int]], batch_size: int, min_size: int, max_size: int,
                 divisibility: int = 32, group_by_size: bool = True) -> list[list[int]]:
    """Positions into `sizes` ((width, height) of each image as stored) grouped into batches.

    group_by_size: images in one batch share their padded model-input size (resize to min/max_size, round
    up to `divisibility`), so batching adds no padding and batch > 1 reproduces batch 1. Within a size the
    data-set order is kept; sizes come in order of first appearance. False: consecutive runs of the
    data-set order (the official loader, whose padding the fusion attends to:
    maskrcnn_benchmark/data/collate_batch.py).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    positions = list(range(len(sizes)))
    if not group_by_size:
        return [positions[i: i + batch_size] for i in range(0, len(positions), batch_size)]

    def padded(wh: tuple[int, int]) -> tuple[int, int]:
        h, w = resized_size(int(wh[0]), int(wh[1]), min_size, max_size)
        return -(-h // divisibility) * divisibility, -(-w // divisibility) * divisibility

    groups: dict[tuple[int, int], list[int]] = {}
    for pos, wh in zip(positions, sizes):
        groups.setdefault(padded(wh), []).append(pos)
    return [g[i: i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]


class _BatchSet(torch.utils.data.Dataset):
    """Item k = the k-th planned batch, loaded and preprocessed (runs in a DataLoader worker)."""

    def __init__(self, load: Callable[[int], Any], keys: Sequence[int], batches: Sequence[Sequence[int]],
                 preprocess: Callable[[list[Any]], ImageBatch]) -> None:
        self.load, self.keys, self.batches, self.preprocess = load, list(keys), [list(b) for b in batches], preprocess

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> tuple[list[int], ImageBatch] | _Failed:
        keys = [self.keys[p] for p in self.batches[k]]
        try:
            return keys, self.preprocess([self.load(key) for key in keys])
        except UserError as e:  # handed back as a value: a worker's raise would arrive wrapped in its traceback
            return _Failed(str(e))


@dataclass(frozen=True)
class _Failed:
    """A batch whose loading raised a UserError (its message), re-raised in the main process."""

    message: str


def _raise_failed(items: Iterable[Any]) -> Iterator[tuple[list[int], ImageBatch]]:
    try:
        for item in items:
            if isinstance(item, _Failed):
                raise UserError(item.message)
            yield item
    finally:  # a prefetch generator stops its thread now, not when it is collected
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _identity(x: Any) -> Any:
    return x


def auto_workers(device: str | torch.device) -> int:
    """DataLoader worker processes worth starting: GPU up to 4 (the CPU is otherwise idle), CPU none.

    On CPU worker processes cost ~0.1 s each to start and compete with the model for the cores: a zero-shot
    pass over the synthetic suite was slower with 2 workers than with none (issue #9). `auto_prefetch`
    decides whether a background thread decodes instead.
    """
    cores = os.cpu_count() or 1
    if str(device).startswith("cuda"):
        return max(0, min(4, cores - 1))
    return 0


def auto_prefetch(device: str | torch.device) -> bool:
    """Whether a background thread should decode the next batch (when there are no worker processes).

    GPU: yes, the CPU waits on the device anyway. CPU: only when torch's intra-op threads leave a core
    free; on a core shared with them the thread delays one of them, and the others wait at every parallel
    region's end for it.
    """
    if str(device).startswith("cuda"):
        return True
    return (os.cpu_count() or 1) > torch.get_num_threads()


_END = object()  # the producer's last item: the source is exhausted
_PUT_POLL_S = 0.05  # how often a producer blocked on a full queue checks whether the consumer has gone


def _offer(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put `item` on `q`, waiting while it is full; False (item dropped) once the consumer has stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_PUT_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _produce(items: Iterable[Any], q: queue.Queue, stop: threading.Event) -> None:
    """Thread body: every item, then _END; an exception is passed on as the last item instead."""
    try:
        for item in items:
            if not _offer(q, (item, None), stop):
                return
        _offer(q, (_END, None), stop)
    except BaseException as e:  # noqa: BLE001 -- handed to the consumer, which re-raises it
        _offer(q, (_END, e), stop)


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """`items` in order, computed by a background thread up to `depth` items ahead of the consumer.

    Why: image decoding (PIL) and preprocessing (numpy / torch) release the GIL, so the next batch is
    prepared on a free core while the model computes this one. An exception raised by `items` is re-raised
    here, in the consumer; closing this generator early (break, error) stops the thread and waits for it.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(items, q, stop), name="glip-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def image_batches(load: Callable[[int], Any], keys: Sequence[int], batches: Sequence[Sequence[int]],
                  config: Any, num_workers: int = 2, prefetch: bool = True) -> Iterator[tuple[list[int], ImageBatch]]:
    """(keys, ImageBatch) per planned batch, in plan order; `load(key)` -> PIL image (e.g. dataset.load_image).

    num_workers > 0: a torch DataLoader decodes and preprocesses upcoming batches in worker processes
    while the model computes (workers run torch with one thread each). No workers for 1-2 batches,
    where starting them costs more than it saves. Without workers, prefetch=True prepares the next batch
    in a background thread (`prefetched`); False loads each batch only when it is asked for.
    """
    preprocess = partial(resize_and_pad, min_size=config.min_size, max_size=config.max_size,
                         mean=config.pixel_mean, std=config.pixel_std, divisibility=config.size_divisibility)
    data = _BatchSet(load, keys, batches, preprocess)
    workers = num_workers if len(batches) > 2 else 0
    if workers == 0:  # no DataLoader machinery at all
        items = (data[k] for k in range(len(data)))
        yield from _raise_failed(prefetched(items) if prefetch and len(data) > 1 else items)
        return
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=workers,
                                         collate_fn=_identity, prefetch_factor=2)
    yield from _raise_failed(loader)


# ---------------------------------------------------------------------------------------- predictors
