"""Thin helpers over torch.distributed (through mmengine.dist): rank, world size, barrier.

Everything works without a process group: rank 0, world size 1, barrier and broadcast are no-ops, so the
same code runs in one process and under `torchrun --nproc_per_node N` (CPU: gloo; GPU: nccl).

    python -m torch.distributed.run --nproc_per_node 2 -m bench.cli run ...   # after init_from_env()
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine import dist as mm_dist

__all__ = ["is_initialized", "rank", "world_size", "local_rank", "is_main", "barrier", "broadcast_object",
           "init_from_env", "destroy", "local_device"]


def is_initialized() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return mm_dist.get_rank()


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return mm_dist.get_world_size()


def local_rank() -> int:
    """Rank on this machine (torchrun's LOCAL_RANK; 0 when not distributed)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_initialized() and world_size() > 1:
        mm_dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` of rank `src` on every rank (picklable values; returned unchanged in one process)."""
    if not is_initialized() or world_size() == 1:
        return obj
    box = [obj]
    mm_dist.broadcast_object_list(box, src=src)
    return box[0]


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group torchrun describes (env WORLD_SIZE > 1, MASTER_ADDR/PORT, RANK); True if joined.

    backend: gloo on CPU, nccl when CUDA is available, unless given. A no-op outside torchrun or when the
    group already exists.
    """
    if is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # rank 0 alone scores a split (LVIS: minutes) while the others wait: NCCL's default 10-minute timeout is short
    minutes = int(os.environ.get("GLIP_BENCH_DIST_TIMEOUT_MIN", "60"))
    torch_dist.init_process_group(backend=backend, timeout=timedelta(minutes=minutes))
    return True


def destroy() -> None:
    if is_initialized():
        torch_dist.destroy_process_group()


def local_device(device: str) -> str:
    """'cuda' -> 'cuda:<local rank>' when distributed (one GPU per process); anything else unchanged."""
    return f"cuda:{local_rank()}" if device == "cuda" and is_initialized() else device
