"""Data-parallel training pieces for `bench.runs.train.train`: wrap, shard a global batch, agree on loss and metric.

Used only when torch.distributed is initialised (torchrun + `bench.dist.comm.init_from_env()`); without a process
group `bench.runs.train.train` never calls into this module, so one process runs exactly as before.

The scheme (the official maskrcnn_benchmark one, IMS_PER_BATCH = the global batch):
- every rank draws the same seed-derived permutation of the epoch and cuts it into the same global batches
  of `batch_size` images; rank r trains on images r, r + W, r + 2W, ... of each global batch (`rank_share`),
  so the ranks see disjoint images and the iteration count equals the one-process run's;
- the model is wrapped in mmengine's `MMDistributedDataParallel` (torch DDP), which broadcasts rank 0's
  weights and buffers once at construction and averages the gradients over ranks in backward. GLIPLoss
  averages its normalisers (#positives, centerness sum) over ranks, so the averaged gradient is the
  gradient of the global batch's loss, as in one process with the whole batch;
- every rank takes the same decisions: a non-finite loss on any rank skips the step on all ranks
  (`global_loss`), the early-stopping / LR-schedule metric is rank 0's value on every rank
  (`broadcast_metric`), so the plateau schedule, early stop and best-weights restore agree and all ranks
  end with identical weights.

Frozen parameters (requires_grad False) are not registered with DDP at all. Every trainable parameter of
every regime receives a gradient in GLIP's forward (measured for glip-tiny (deep and late fusion),
glip-synth, glip-t and glip-t-a, linear-probe / prompt-tuning / full-ft; docs/distributed.md), so DDP runs
with find_unused_parameters=False (no extra autograd-graph walk per step); `GradCoverage` checks this on
the first step and names any trainable parameter that got no gradient instead of letting DDP fail later
(or, with a one-step budget, silently leave that parameter's bucket unsynchronised).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from mmengine import dist as mm_dist
from torch import nn

from bench.dist import comm as dist
from bench.util.errors import UserError

__all__ = ["is_active", "wrap", "check_batch_size", "rank_share", "global_loss", "broadcast_metric",
           "GradCoverage", "param_digest"]


def is_active() -> bool:
    """True when a process group exists (any world size, 1 included): training goes through DDP."""
    return dist.is_initialized()


def wrap(model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
    """`model` in mmengine's MMDistributedDataParallel (torch DDP; forward = the module's forward).

    device_ids stays None: the module lives on one device (its process's GPU, or the CPU) and the inputs
    are already there. No buffer sync before each forward: GLIP's buffers are constants (Swin relative-position
    indices, BERT position / token-type ids, anchor cells; no BatchNorm running statistics), identical on
    every rank after the construction-time broadcast, so re-broadcasting them before every forward is
    pure communication.
    """
    import inspect

    from mmengine.model import MMDistributedDataParallel

    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("no trainable parameter to wrap in DistributedDataParallel")
    # newer torch splits the old broadcast_buffers: forward_sync_buffers=False still syncs them at init
    newer = "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    buffers = {"forward_sync_buffers": False} if newer else {"broadcast_buffers": False}
    return MMDistributedDataParallel(module=model, device_ids=None, find_unused_parameters=find_unused_parameters,
                                     **buffers)


def check_batch_size(batch_size: int, world: int) -> int:
    """Images per rank in a global batch; the global batch must split evenly (official make_data_loader)."""
    if batch_size % world:
        raise UserError(
            f"batch_size {batch_size} is the global batch (official SOLVER.IMS_PER_BATCH) and must be divisible "
            f"by the {world} processes: set it to a multiple of {world} (e.g. --set "
            f"batch_size={world * math.ceil(batch_size / world)}) or launch a number of processes that divides it")
    return batch_size // world


def rank_share(batch: Sequence[int], order: Sequence[int], rank: int, world: int) -> list[int]:
    """Rank `rank`'s images of one global batch: positions rank, rank + world, ... (disjoint across ranks).

    A global batch with fewer images than ranks (only the last one of an epoch can be short) is first
    topped up with images from the start of the epoch's `order`, cycling, so every rank has one image and
    takes part in the gradient all-reduce (as torch's DistributedSampler pads with repeated samples).
    """
    batch = list(batch)
    if not batch:
        raise ValueError("empty global batch")
    if len(batch) < world:
        batch += list(itertools.islice(itertools.cycle(order), world - len(batch)))
    return batch[rank::world]


def global_loss(loss: torch.Tensor) -> tuple[bool, float]:
    """(all ranks' losses are finite, the mean loss over ranks): the same answer on every rank.

    One all-reduce of [finite flag, loss] (mmengine.dist moves it to the backend's device and back).
    """
    finite = bool(torch.isfinite(loss.detach()))
    stats = torch.tensor([1.0 if finite else 0.0, float(loss.detach()) if finite else 0.0], dtype=torch.float64)
    mm_dist.all_reduce(stats, op="sum")
    world = dist.world_size()
    all_finite = int(round(float(stats[0]))) == world
    return all_finite, float(stats[1]) / world if all_finite else float("nan")


def broadcast_metric(value: float | None) -> float:
    """Rank 0's evaluation metric on every rank (so the schedule and early stop agree)."""
    out = dist.broadcast_object(value, src=0)
    if out is None:
        raise RuntimeError("rank 0 did not evaluate but the other ranks expected its metric")
    return float(out)


class GradCoverage:
    """Records which of `names` got a gradient during one backward (tensor hooks; removed by `check`).

    With find_unused_parameters=False, DDP cannot finish the all-reduce of a bucket holding a parameter
    that got no gradient; `check` raises a ValueError naming such parameters after the first step.
    """

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        params = dict(model.named_parameters())
        self.names = sorted(names)
        self.seen: set[str] = set()
        self.handles = [params[n].register_hook(self._hook(n)) for n in self.names]

    def _hook(self, name: str) -> Any:
        def hook(grad: torch.Tensor) -> None:
            self.seen.add(name)
        return hook

    def check(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        missing = [n for n in self.names if n not in self.seen]
        if missing:
            raise ValueError(
                f"{len(missing)} trainable parameters got no gradient in the first step ({missing[:10]}); "
                "DistributedDataParallel needs find_unused_parameters=True for them "
                "(bench.runs.train.train(..., find_unused_parameters=True)) or they should be frozen")


def param_digest(model: nn.Module) -> str:
    """sha256 over every parameter's and buffer's name, dtype, shape and bytes (CPU copy): equal iff identical."""
    import hashlib

    h = hashlib.sha256()
    for name, t in itertools.chain(model.named_parameters(), model.named_buffers()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
