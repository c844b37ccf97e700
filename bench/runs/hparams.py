"""A run's hyper-parameters as frozen dataclasses: the one place their defaults are declared.

Inference settings apply to every regime; training settings only to the regimes that train. A regime
declares only where it departs from these defaults (prompt-tuning's LR and weight decay, bench.runs.regimes).
`coerce` is the one check of user values (`--set key=value`, RunSpec.overrides, `pretrain(**kw)`): it names
the bad key with the closest valid one. A record stores `RunHParams.as_dict()` (docs/formats.md, "The record").

The training values follow the official fine-tuning flow (microsoft/GLIP tools/finetune.py and the
README's fine-tuning options; maskrcnn_benchmark/config/defaults.py for the solver keys named below).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.tasks.fewshot import copy_factor
from bench.util.errors import UserError, unknown_name


@dataclass(frozen=True, kw_only=True)
class InferenceHParams:
    """How a split is predicted; none of these may change which boxes a model finds, only how fast."""

    # official TEST.IMS_PER_BATCH 1 for LVIS/Flickr; fusion attends over padding, so batch size moves numbers
    infer_batch_size: int = 1
    # bf16 autocast of the model's calls at inference on CUDA, ignored on CPU. Off by default: the official
    # evaluation runs in float32, and bf16 rounding moves scores slightly
    infer_amp: bool = False


@dataclass(frozen=True, kw_only=True)
class TrainHParams:
    """Optimisation of a training regime. None = resolved per run from the shots (`resolve_hparams`)."""

    optimizer: str = "AdamW"
    lr: float = 1e-4
    lang_lr: float = 1e-5
    lang_lr_groups: tuple[str, ...] = ("language",)  # parameter groups (GLIP.parameter_groups) that take lang_lr
    weight_decay: float = 0.05
    bias_lr_factor: float = 2.0
    bias_weight_decay: float = 0.0
    clip_grad: float | None = 1.0  # full-model gradient norm cap; None or 0 = no clipping
    batch_size: int = 4
    max_epochs: int = 200
    max_iters: int | None = None  # optional cap on optimiser steps (demo budgets)
    eval_every: int = 1  # epochs between evaluations on the val split (official CHECKPOINT_PER_EPOCH 1.0); 0 = none
    val_shots: int | None = None  # few-shot val split size: the training shots (official val_{shot}_{seed})
    lr_factor: float = 0.1  # official SOLVER.GAMMA for the auto-step schedule
    final_decay: float = 0.0  # > 0: LR falls linearly to lr_factor x over this last share of max_iters (not official)
    step_patience: int | None = None  # 3 few-shot, 2 full data (official SOLVER.STEP_PATIENCE)
    stop_patience: int | None = None  # 8 few-shot, 4 full data (official SOLVER.AUTO_TERMINATE_PATIENCE)
    copy_factor: int | None = None  # 8/4/2/1 for 1/3/5/10 shots, 1 for full data (official DATASETS.GENERAL_COPY)
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU


# The per-shot values resolve_hparams fills in where a setting is None (official few-shot / full-data values)
FEW_SHOT_STEP_PATIENCE, FULL_DATA_STEP_PATIENCE = 3, 2
FEW_SHOT_STOP_PATIENCE, FULL_DATA_STOP_PATIENCE = 8, 4

# Pre-training on grounding data (bench.runs.train.pretrain, the synthetic world's path): the official
# pre-training solver (weight decay 1e-4, no GENERAL_COPY) with the few-shot plateau patience
PRETRAIN = TrainHParams(weight_decay=1e-4, copy_factor=1, step_patience=FEW_SHOT_STEP_PATIENCE)


@dataclass(frozen=True)
class RunHParams:
    """Everything one run uses: inference settings, and training settings when its regime trains."""

    infer: InferenceHParams
    train: TrainHParams | None = None

    def as_dict(self) -> dict[str, Any]:
        """The flat mapping a record stores: training keys first, then inference keys."""
        return {**(dataclasses.asdict(self.train) if self.train else {}), **dataclasses.asdict(self.infer)}


H = TypeVar("H", InferenceHParams, TrainHParams)
_NON_NEGATIVE_OR_NONE = ("max_iters", "val_shots", "step_patience", "stop_patience", "copy_factor")
_NONE_MEANS_OFF = ("clip_grad",)
_AT_LEAST_ONE = ("batch_size", "max_epochs", "infer_batch_size")
MAX_BATCH = 4096  # far above any device's memory at GLIP's input size; a typo past it fails only at the first batch
# float settings -> (lowest, highest, whether the lowest is allowed); every float must be finite
_FLOAT_RANGES = {
    "lr": (0.0, None, False), "lang_lr": (0.0, None, True), "weight_decay": (0.0, None, True),
    "bias_lr_factor": (0.0, None, True), "bias_weight_decay": (0.0, None, True), "clip_grad": (0.0, None, True),
    "lr_factor": (0.0, 1.0, False), "final_decay": (0.0, 1.0, True),
}
# parameter groups of every model family (glip.model.PARAMETER_GROUPS, bench.models.hf's groups): lang_lr_groups
# may name only these (an unknown one would silently give no parameter the language LR)
PARAMETER_GROUP_NAMES = ("backbone_stem", "backbone", "fpn", "language", "fusion", "head", "prompt")


def check_optimizer(name: str) -> None:
    """An optimizer setting names a torch.optim optimizer (what mmengine's OPTIMIZERS registry builds)."""
    import torch

    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)) or cls is torch.optim.Optimizer:
        valid = [n for n, c in vars(torch.optim).items()
                 if isinstance(c, type) and issubclass(c, torch.optim.Optimizer) and c is not torch.optim.Optimizer]
        raise unknown_name("optimizer (override optimizer=...)", name, valid)


def _check_range(key: str, value: Any) -> None:
    """The value checks beyond the type: finite floats in their range, batch sizes, optimizer, groups."""
    import math

    if isinstance(value, float):
        low, high, low_ok = _FLOAT_RANGES.get(key, (None, None, True))
        bad = not math.isfinite(value) or (low is not None and (value < low or (value == low and not low_ok))) \
            or (high is not None and value > high)
        if bad:
            rng = f"{'[' if low_ok else '('}{low}, {high if high is not None else 'inf'}]" if low is not None else "finite"
            raise UserError(f"override {key}={value!r} must be a finite number in {rng}")
    if key in ("batch_size", "infer_batch_size") and value > MAX_BATCH:
        raise UserError(f"override {key}={value} is past {MAX_BATCH} images per batch; use a smaller batch")
    if key == "optimizer":
        check_optimizer(value)
    if key == "lang_lr_groups":
        unknown = [g for g in value if g not in PARAMETER_GROUP_NAMES]
        if unknown:
            raise UserError(f"override lang_lr_groups names {unknown}, which are no parameter group; valid: "
                            f"{', '.join(PARAMETER_GROUP_NAMES)}")


def names(cls: type) -> tuple[str, ...]:
    """The setting names of a hyper-parameter class, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def setting_names(trains: bool) -> tuple[str, ...]:
    """The settings a regime understands: inference ones, plus training ones if it trains."""
    return (*names(TrainHParams), *names(InferenceHParams)) if trains else names(InferenceHParams)


def _value(key: str, value: Any, default: Any) -> Any:
    """One setting's value in its default's type (an int where a float is expected becomes a float)."""
    if key in _NON_NEGATIVE_OR_NONE:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise UserError(f"override {key}={value!r} must be a non-negative integer (or none)")
        return value
    if value is None and key in _NONE_MEANS_OFF:
        return None
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise UserError(f"override {key}={value!r} must be true or false")
    if isinstance(default, tuple) and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        value_out = value
    elif isinstance(default, str) and isinstance(value, str):
        value_out = value
    else:
        raise UserError(f"override {key}={value!r} must be a {type(default).__name__} like the default {default!r}")
    if key in _AT_LEAST_ONE and value_out < 1:
        raise UserError(f"override {key}={value_out} must be >= 1")
    if key == "eval_every" and value_out < 0:
        raise UserError(f"override eval_every={value_out} must be >= 0 (0 = no evaluation while training)")
    return value_out


def coerce(cls: type[H], values: Mapping[str, Any], *, what: str = "setting", base: H | None = None) -> H:
    """`base` (default: the class defaults) with `values` replacing its fields, each checked and coerced.

    An unknown key -> UserError naming the closest valid one (`what` says whose setting it is).
    """
    typed = dataclasses.asdict(cls())  # the declared defaults give each setting's type
    out = {}
    for key, value in values.items():
        if key not in typed:
            raise unknown_name(what, key, typed)
        out[key] = _value(key, value, typed[key])
        if out[key] is not None:
            _check_range(key, out[key])
    return dataclasses.replace(base if base is not None else cls(), **out)


def resolve_hparams(regime: Any, shots: int | None, overrides: Mapping[str, Any] | None = None, *,
                    resolve_per_shot: bool = True) -> RunHParams:
    """The hyper-parameters one run uses: defaults, the regime's departures, overrides, then per-shot values.

    regime: a bench.runs.regimes.Regime (its `trains`, `name` and `train_defaults`). resolve_per_shot=False
    leaves the per-shot settings None (the regime's defaults as declared).
    """
    overrides = dict(overrides or {})
    infer_keys = set(names(InferenceHParams))
    known = setting_names(regime.trains)
    for key in overrides:
        if key not in known:
            raise unknown_name(f"{regime.name} setting", key, known)
    infer = coerce(InferenceHParams, {k: v for k, v in overrides.items() if k in infer_keys})
    if not regime.trains:
        return RunHParams(infer=infer)
    base = coerce(TrainHParams, regime.train_defaults, what=f"{regime.name} default")
    train = coerce(TrainHParams, {k: v for k, v in overrides.items() if k not in infer_keys},
                   what=f"{regime.name} setting", base=base)
    if not resolve_per_shot:
        return RunHParams(infer=infer, train=train)
    full = shots is None
    train = dataclasses.replace(
        train,
        step_patience=((FULL_DATA_STEP_PATIENCE if full else FEW_SHOT_STEP_PATIENCE)
                       if train.step_patience is None else train.step_patience),
        stop_patience=((FULL_DATA_STOP_PATIENCE if full else FEW_SHOT_STOP_PATIENCE)
                       if train.stop_patience is None else train.stop_patience),
        copy_factor=copy_factor(shots) if train.copy_factor is None else train.copy_factor,
        val_shots=shots if train.val_shots is None and not full else train.val_shots,
    )
    return RunHParams(infer=infer, train=train)
