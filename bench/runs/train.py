"""Fine-tuning and pre-training: a short epoch loop over parts that each do one thing.

The parts: a train view (`len`, `view[i]`, `view.batch(samples, device)` -> the model's forward arguments:
bench.data.training for GLIP, bench.models.hf.training for transformers), typed hyper-parameters
(bench.runs.hparams.TrainHParams), the optimiser from mmengine pieces (bench.runs.optim), one optimiser
step (`Step`), evaluation with the plateau schedule and the official auto-termination (bench.runs.early_stop),
and one atomic weights writer (glip.checkpoint.write_safetensors). The loop is built from mmengine parts
rather than its Runner, because the Runner would need GLIP wrapped as an mmengine BaseModel with a data
preprocessor, a work_dir, loggers and visualisers per run, and its CheckpointHook's save/load path trips over
torch.load(weights_only=True) (environment.md); the best weights are instead kept in memory and restored.

Data-parallel (launched by torchrun, process group joined with `bench.dist.comm.init_from_env()`): `train`
wraps the model in mmengine's MMDistributedDataParallel and gives each rank a disjoint share of every
global batch; the loss-finiteness and evaluation decisions are made identically on every rank
(bench/dist/ddp.py says how). Without a process group none of this runs: one process trains as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.data.training import GroundingTrainSet, TrainInput, load_grounding_entries
from bench.dist import comm as bench_dist
from bench.dist import ddp
from bench.runs.early_stop import Validation, set_modes
from bench.runs.hparams import PRETRAIN, TrainHParams, coerce, names
from bench.runs.optim import build_optimizer, final_decay
from bench.util.logs import get_logger, progress_bar

log = get_logger("train")
_set_modes = set_modes  # the name tests and older callers use
__all__ = ["TrainResult", "build_optimizer", "final_decay", "load_adapter", "pretrain", "save_adapter",
           "set_trainable", "train"]


@dataclass
class TrainResult:
    """What a training run did; goes into the record's "training" section."""

    iters: int = 0
    epochs: float = 0.0
    images_seen: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    skipped_nonfinite: int = 0
    stopped_early: bool = False
    best_metric: float | None = None
    best_epoch: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per evaluation
    epoch_losses: list[float] = field(default_factory=list)  # data-parallel: the mean over ranks
    world_size: int = 1  # processes that trained together (data-parallel); images_seen counts all of them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def end_epoch(self, epoch: int, done: int, batches: int, losses: Sequence[float]) -> None:
        """Epoch count (fractional when the budget cut the epoch) and the epoch's mean finite loss."""
        self.epochs = epoch - 1 + done / batches
        self.epoch_losses.append(sum(losses) / len(losses) if losses else float("nan"))

    def add_validation(self, validation: Validation | None) -> None:
        if validation is not None:
            stop = validation.stopping
            self.history, self.eval_seconds = validation.history, validation.seconds
            self.best_metric, self.best_epoch = stop.best_metric, stop.best_epoch


def set_trainable(model: nn.Module, names: Iterable[str]) -> list[str]:
    """requires_grad on exactly `names`; returns them sorted (unknown name -> ValueError)."""
    names = set(names)
    known = {n for n, _ in model.named_parameters()}
    missing = sorted(names - known)
    if missing:
        raise ValueError(f"parameters {missing[:5]} are not in the model")
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    return sorted(names)


class Step:
    """One optimiser step on one global batch: this rank's share through the train view, the loss, the update.

    A non-finite loss skips the step (the official code zeroes a NaN loss and still steps; skipping is the
    honest equivalent); data-parallel ranks agree on it, so every rank skips or steps together.
    """

    def __init__(self, model: nn.Module, view: Any, optim: Any, hp: TrainHParams, device: str,
                 names: Sequence[str], find_unused_parameters: bool) -> None:
        self.view, self.optim, self.device = view, optim, device
        self.decay = final_decay(optim, hp)
        self.distributed = ddp.is_active()
        self.rank, self.world = (bench_dist.rank(), bench_dist.world_size()) if self.distributed else (0, 1)
        if self.distributed:
            ddp.check_batch_size(hp.batch_size, self.world)
        self.net = ddp.wrap(model, find_unused_parameters) if self.distributed else model
        self.coverage = ddp.GradCoverage(model, names) if self.distributed and not find_unused_parameters else None

    def __call__(self, batch: Sequence[int], order: Sequence[int]) -> float | None:
        """The batch's loss, or None when it was not finite (the step skipped)."""
        local = ddp.rank_share(batch, order, self.rank, self.world) if self.distributed else batch
        args, kwargs = self.view.batch([self.view[i] for i in local], self.device)
        with self.optim.optim_context(self.net):
            loss_dict = self.net(*args, **kwargs)
        loss = sum(loss_dict.values())
        finite, value = self._agree(loss)
        if finite:
            self.optim.update_params(loss)
            if self.coverage is not None:
                self.coverage.check()  # after the first step: every trainable parameter got a gradient
                self.coverage = None
        else:
            self.optim.zero_grad()
        if self.decay is not None:
            self.decay.step()
        return value if finite else None

    def _agree(self, loss: torch.Tensor) -> tuple[bool, float]:
        if self.distributed:
            return ddp.global_loss(loss)
        finite = bool(torch.isfinite(loss))
        return finite, float(loss.detach()) if finite else math.nan


def epoch_batches(n: int, hp: TrainHParams, gen: torch.Generator) -> tuple[list[list[int]], list[int]]:
    """(global batches, the epoch's order): n images x copy_factor (official GENERAL_COPY), shuffled."""
    order = (torch.randperm(n * (hp.copy_factor or 1), generator=gen) % n).tolist()
    return [order[b: b + hp.batch_size] for b in range(0, len(order), hp.batch_size)], order


def _budget_spent(hp: TrainHParams, res: TrainResult) -> bool:
    return hp.max_iters is not None and res.iters >= hp.max_iters


def _progress(progress: tuple[str, int | None] | None, n: int, hp: TrainHParams) -> Any:
    """A bar over the optimiser steps (rank 0 only), or None."""
    if progress is None or (ddp.is_active() and bench_dist.rank() != 0):
        return None
    total = hp.max_epochs * math.ceil(n * (hp.copy_factor or 1) / hp.batch_size)
    return progress_bar(min(hp.max_iters, total) if hp.max_iters else total, progress[0], position=progress[1],
                        unit="step")


def _count(res: TrainResult, bar: Any, batch: Sequence[int], loss: float | None) -> None:
    res.iters += 1
    res.images_seen += len(batch)
    res.skipped_nonfinite += loss is None
    if bar is not None:
        bar.update(1)
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)


def train(
    model: nn.Module,
    view: Any,
    *,
    trainable: Iterable[str],
    hp: TrainHParams,
    device: str = "cpu",
    seed: int = 0,
    evaluate: Callable[[nn.Module], float] | None = None,
    eval_modules: Sequence[str] = (),
    eval_ranks: str = "all",
    find_unused_parameters: bool = False,
    progress: tuple[str, int | None] | None = None,
) -> TrainResult:
    """Train `trainable` parameters of `model` on a train view (`len`, `view[i]`, `view.batch(samples, device)`).

    `evaluate(model) -> metric` (higher is better; the model in eval mode under no_grad) drives the LR
    schedule, early stopping and the best weights, every hp.eval_every epochs (0: never; the final weights
    are kept). Data-parallel: hp.batch_size is the global batch; eval_ranks as bench.runs.early_stop.Validation.
    progress: (label, line) of a bar over the optimiser steps with ETA and the running loss, drawn by rank 0.
    """
    n = len(view)
    if n == 0:
        raise ValueError("no training samples (no image with boxes in the training split)")
    names = set_trainable(model, trainable)
    res = TrainResult(world_size=bench_dist.world_size() if ddp.is_active() else 1)
    torch.manual_seed(seed + (bench_dist.rank() if ddp.is_active() else 0))  # per-rank dropout, drop path
    gen = torch.Generator().manual_seed(seed)  # the epoch order: the same on every rank
    optim = build_optimizer(model, hp, device)
    validation = (Validation(model, evaluate, optim, hp, names, eval_modules, eval_ranks)
                  if evaluate is not None and hp.eval_every else None)
    step = Step(model, view, optim, hp, device, names, find_unused_parameters)
    bar, start = _progress(progress, n, hp), time.perf_counter()
    set_modes(model, eval_modules)
    for epoch in range(1, hp.max_epochs + 1):
        batches, order = epoch_batches(n, hp, gen)
        losses, done = [], 0
        for batch in batches:
            if _budget_spent(hp, res):
                break
            loss = step(batch, order)
            losses += [] if loss is None else [loss]
            done += 1
            _count(res, bar, batch, loss)
        res.end_epoch(epoch, done, len(batches), losses)
        last = _budget_spent(hp, res) or epoch == hp.max_epochs
        if validation is not None and validation.due(epoch, last) and validation(res.epochs, res.iters):
            res.stopped_early = True
        if last or res.stopped_early:
            break
    _finish(model, res, validation, bar, device, start)
    return res


def _finish(model: nn.Module, res: TrainResult, validation: Validation | None, bar: Any, device: str,
            start: float) -> None:
    """Close the bar, time the training, fill the result from the evaluations, restore the best weights."""
    if bar is not None:
        bar.close()
    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()
    res.train_seconds = time.perf_counter() - start
    res.add_validation(validation)
    if validation is not None:
        validation.stopping.restore()
    model.eval()


def pretrain(
    model: nn.Module,
    grounding_json_paths: Sequence[str | Path],
    image_roots: Sequence[str | Path],
    *,
    max_iters: int | None = None,
    max_epochs: int = 1,
    device: str = "cpu",
    seed: int = 0,
    frozen_groups: Sequence[str] = (),
    evaluate: Callable[[nn.Module], float] | None = None,
    eval_ranks: str = "all",
    find_unused_parameters: bool = False,
    progress: tuple[str, int | None] | None = None,
    **hp_overrides: Any,
) -> TrainResult:
    """Pre-train on MDETR-style grounding json files (one image root per file); the synthetic world's path.

    Same optimisation path as fine-tuning (official pre-training solver: AdamW, LR 1e-4, language LR
    1e-5, bias x2 without decay, clip 1.0); every field of bench.runs.hparams.TrainHParams can be
    overridden by keyword (lr=..., batch_size=..., weight_decay=...). Budget: max_iters and/or max_epochs.
    Data-parallel under torchrun exactly as `train` (batch_size is then the global batch).
    """
    if len(grounding_json_paths) != len(image_roots):
        raise ValueError(f"{len(grounding_json_paths)} grounding files but {len(image_roots)} image roots")
    unknown = sorted(set(hp_overrides) - set(names(TrainHParams)))
    if unknown:  # a programming error in the caller, not user input
        raise ValueError(f"unknown pre-training settings {unknown}; valid: {sorted(names(TrainHParams))}")
    hp = coerce(TrainHParams, {**hp_overrides, "max_iters": max_iters, "max_epochs": max_epochs},
                what="pre-training setting", base=PRETRAIN)
    entries = []
    for path, root in zip(grounding_json_paths, image_roots):
        entries.extend(load_grounding_entries(path, root))
    view = GroundingTrainSet(entries, model.tokenizer, TrainInput.of(model.config), seed=seed,
                             size_divisibility=model.config.size_divisibility)
    groups = model.parameter_groups()
    trainable = [n for g, names in groups.items() if g not in frozen_groups for n in names]
    model.to(device)
    return train(model, view, trainable=trainable, hp=hp, device=device, seed=seed, evaluate=evaluate,
                 eval_ranks=eval_ranks, find_unused_parameters=find_unused_parameters, progress=progress)


def save_adapter(model: nn.Module, path: str | Path, names: Iterable[str] | None = None) -> Path:
    """Write the state dict (or the tensors in `names`) as safetensors (glip.checkpoint.write_safetensors)."""
    from glip.checkpoint import write_safetensors

    state = model.state_dict()
    if names is not None:
        state = {k: state[k] for k in names}
    return write_safetensors(path, state)


def load_adapter(model: nn.Module, path: str | Path, strict: bool = True) -> list[str]:
    """Load safetensors weights; strict: every tensor must match a model key. Returns the keys loaded."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and unexpected:
        raise KeyError(f"{path}: keys not in the model: {sorted(unexpected)[:10]}")
    return sorted(state)
