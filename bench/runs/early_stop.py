"""Evaluation while training: the plateau LR schedule, the official auto-termination and the best weights.

Early stopping follows the official trainer (maskrcnn_benchmark/engine/trainer.py, AUTO_TERMINATE_PATIENCE):
an evaluation below the best so far counts as a miss, an equal or better one resets the count and becomes
`model_best`; training stops after `patience` misses in a row. The best weights are kept in memory and
restored at the end (the official flow evaluates model_best on the test split).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from mmengine.optim import ReduceOnPlateauLR
from torch import nn

from bench.dist import comm as bench_dist
from bench.dist import ddp
from bench.runs.hparams import FEW_SHOT_STEP_PATIENCE, TrainHParams


class EarlyStopping:
    """The official auto-termination over a stream of metrics, keeping a copy of the best weights."""

    def __init__(self, model: nn.Module, names: Iterable[str], patience: int | None) -> None:
        self.params = dict(model.named_parameters())
        self.names = list(names)
        self.patience = patience  # None: never stop early
        self.previous_best = 0.0  # official: previous_best starts at 0.0
        self.misses = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_metric: float | None = None
        self.best_epoch: float | None = None

    def update(self, value: float, epoch: float) -> bool:
        """Count a miss or keep the new best; True = stop now."""
        if value < self.previous_best:
            self.misses += 1
        else:
            self.misses, self.previous_best = 0, value
            self.best_state = {k: self.params[k].detach().clone() for k in self.names}
            self.best_metric, self.best_epoch = value, epoch
        return self.patience is not None and self.misses >= self.patience

    def restore(self) -> None:
        """Copy the best weights back (nothing if no evaluation ran)."""
        if self.best_state is None:
            return
        with torch.no_grad():
            for k, v in self.best_state.items():
                self.params[k].copy_(v)


def set_modes(model: nn.Module, eval_modules: Sequence[str]) -> None:
    """Train mode, except eval_modules (dotted names; "backbone_stem" = the model's stem_module_names())."""
    model.train()
    names = []
    for name in eval_modules:
        names.extend(model.stem_module_names() if name == "backbone_stem" else [name])
    for name in names:
        try:
            sub = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"the model has no submodule {name!r} to keep in eval mode") from None
        sub.eval()


class Validation:
    """Scores the model on the val split, steps the plateau schedule, records history, decides early stopping.

    Data-parallel: eval_ranks "all" calls `evaluate` on every rank (needed when it is itself distributed),
    "main" on rank 0 only; either way rank 0's value is used everywhere.
    """

    def __init__(self, model: nn.Module, evaluate: Callable[[nn.Module], float], optim: Any, hp: TrainHParams,
                 names: Iterable[str], eval_modules: Sequence[str], eval_ranks: str) -> None:
        if eval_ranks not in ("all", "main"):
            raise ValueError(f"eval_ranks must be 'all' or 'main', got {eval_ranks!r}")
        self.model, self.evaluate, self.optim = model, evaluate, optim
        self.eval_modules, self.eval_ranks = eval_modules, eval_ranks
        patience = hp.step_patience if hp.step_patience is not None else FEW_SHOT_STEP_PATIENCE
        self.schedule = ReduceOnPlateauLR(optim, monitor="metric", rule="greater", factor=hp.lr_factor,
                                          patience=patience)
        self.stopping = EarlyStopping(model, names, hp.stop_patience)
        self.every = hp.eval_every
        self.seconds = 0.0
        self.history: list[dict[str, float]] = []

    def due(self, epoch: int, last: bool) -> bool:
        """Whether this epoch ends with an evaluation (every `eval_every` epochs, and at the last one)."""
        return last or epoch % self.every == 0

    def __call__(self, epoch: float, iters: int) -> bool:
        """Evaluate now; True = stop (official auto-termination)."""
        t0 = time.perf_counter()
        value = self._metric()
        set_modes(self.model, self.eval_modules)
        self.seconds += time.perf_counter() - t0
        self.schedule.step({"metric": value})
        # mmengine appends a parameter-less group holding the base settings: its lr is the schedule's base LR
        self.history.append({"epoch": epoch, "iter": iters, "metric": value, "lr": self.optim.param_groups[-1]["lr"]})
        return self.stopping.update(value, epoch)

    def _metric(self) -> float:
        distributed = ddp.is_active()
        self.model.eval()
        value = None
        with torch.no_grad():
            if not distributed or self.eval_ranks == "all" or bench_dist.rank() == 0:
                value = float(self.evaluate(self.model))
        if distributed:
            value = ddp.broadcast_metric(value)
        return value if math.isfinite(value) else -1.0  # not computable (e.g. no ground truth) = COCOeval's -1
