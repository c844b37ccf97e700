"""Transfer regimes as data: what trains, which modules stay in eval mode, and default hyper-parameters.

Each regime is registered in an mmengine Registry ("regime") by a small function returning a frozen
`Regime`; every default can be overridden per run (`--set key=value`, RunSpec.overrides). The numbers
follow the official fine-tuning flow (glip-official.md section 5, `tools/finetune.py` + README):

- zero-shot: nothing trains.
- linear-probe: only the head's prediction layers named in the official LINEAR_PROB list (bbox_pred,
  centerness, dot_product_projection_text, log_scale, bias_lang, bias0); cls_logits and scales stay
  frozen (cls_logits is frozen by the dot-product rule anyway). Base LR 1e-4.
- prompt-tuning ("language_prompt_v2"): only the per-position prompt offset `prompt_offset` (official
  rpn.tunable_linear.weight [1000, D], zero init), LR 0.05, weight decay 0.25; the head runs in eval
  mode (fusion dropout off), as in the official code.
- full-ft: everything except the Swin stem and first stage (FREEZE_CONV_BODY_AT 2 -> parameter group
  backbone_stem) and the always-frozen cls_logits.

Shared by the training regimes (official README fine-tuning options and the pre-training solver):
AdamW, LR 1e-4, language LR 1e-5, weight decay 0.05, bias LR x2 without decay, full-model gradient
clipping 1.0, 1 image per GPU x 4 GPUs = batch 4, evaluation every epoch on the few-shot val split,
LR x0.1 after 3 evaluations without gain (full data 2), stop after 8 (full data 4), 200 epochs, the
copy factors 8/4/2/1 for 1/3/5/10 shots, AMP (bf16 autocast on GPU here). The flip probability is
the model config's `flip_prob` (official AUGMENT.FLIP_PROB_TRAIN), so it is overridden as a model setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mmengine.registry import Registry

from bench.util.errors import UserError, unknown_name

REGIMES = Registry("regime")

# Hyper-parameters every regime understands (inference only)
INFERENCE_DEFAULTS: dict[str, Any] = {
    # official TEST.IMS_PER_BATCH 1 for LVIS/Flickr; fusion attends over padding, so batch size moves numbers
    "infer_batch_size": 1,
    # bf16 autocast for the model's calls at inference on CUDA (issue #9: the GPU speed setting); ignored on
    # CPU. Off by default: official evaluation runs in float32, and bf16 rounding moves scores slightly
    "infer_amp": False,
}

# Defaults of every training regime; None = resolved per run by `resolve_hparams` (documented there)
TRAIN_DEFAULTS: dict[str, Any] = {
    "optimizer": "AdamW",
    "lr": 1e-4,
    "lang_lr": 1e-5,
    "lang_lr_groups": ("language",),  # parameter groups (GLIP.parameter_groups) that take lang_lr
    "weight_decay": 0.05,
    "bias_lr_factor": 2.0,
    "bias_weight_decay": 0.0,
    "clip_grad": 1.0,
    "batch_size": 4,
    "max_epochs": 200,
    "max_iters": None,  # optional cap on optimiser steps (demo budgets)
    "eval_every": 1,  # epochs between evaluations on the val split (official CHECKPOINT_PER_EPOCH 1.0); 0 = none
    "val_shots": None,  # few-shot val split size: the training shots (official val_{shot}_{seed})
    "lr_factor": 0.1,  # official SOLVER.GAMMA for the auto-step schedule
    "final_decay": 0.0,  # > 0: LR falls linearly to lr_factor x over this last share of max_iters (not official)
    "step_patience": None,  # 3 few-shot, 2 full data (official STEP_PATIENCE)
    "stop_patience": None,  # 8 few-shot, 4 full data (official AUTO_TERMINATE_PATIENCE)
    "copy_factor": None,  # 8/4/2/1 for 1/3/5/10 shots, 1 for full data (official GENERAL_COPY)
    "amp": True,  # bf16 autocast on CUDA; ignored on CPU
}


@dataclass(frozen=True, kw_only=True)
class Regime:
    """What a regime trains and with which defaults.

    train_groups: parameter groups (GLIP.parameter_groups()) whose parameters may train;
    name_contains: if set, a parameter in those groups trains only if its name contains one of these;
    name_excludes: parameters whose name contains one of these never train;
    eval_modules: submodules (dotted names) kept in eval mode while training (frozen parts; dropout off).
    """

    name: str
    description: str
    train_groups: tuple[str, ...] = ()
    name_contains: tuple[str, ...] = ()
    name_excludes: tuple[str, ...] = ()
    eval_modules: tuple[str, ...] = ()
    stores: str = "trained"  # what a task needs to store: "nothing", "trained" tensors, or "all" weights
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trains(self) -> bool:
        return bool(self.train_groups)

    def trainable_names(self, parameter_groups: Mapping[str, Iterable[str]]) -> list[str]:
        """Names of the parameters this regime trains, given GLIP.parameter_groups()."""
        unknown = [g for g in self.train_groups if g not in parameter_groups]
        if unknown:
            raise ValueError(
                f"regime {self.name} trains parameter groups {unknown} that the model does not have "
                f"(it has {sorted(parameter_groups)})"
            )
        names = []
        for group in self.train_groups:
            for name in parameter_groups[group]:
                if self.name_contains and not any(k in name for k in self.name_contains):
                    continue
                if any(k in name for k in self.name_excludes):
                    continue
                names.append(name)
        if self.trains and not names:
            raise ValueError(f"regime {self.name} selects no parameter of the model; its name rules do not match")
        return sorted(names)

    def stored_names(self, parameter_groups: Mapping[str, Iterable[str]]) -> list[str]:
        """The tensors a task must keep to reproduce this regime's model (on top of the shared base)."""
        if self.stores == "nothing":
            return []
        if self.stores == "all":
            return sorted(n for names in parameter_groups.values() for n in names)
        return self.trainable_names(parameter_groups)


@REGIMES.register_module(name="zero-shot")
def zero_shot() -> Regime:
    return Regime(name="zero-shot", description="no training: the pre-trained model on the task's prompt",
                  stores="nothing", defaults=dict(INFERENCE_DEFAULTS))


@REGIMES.register_module(name="linear-probe")
def linear_probe() -> Regime:
    return Regime(
        name="linear-probe",
        description="only the head's prediction layers (official LINEAR_PROB list)",
        train_groups=("head",),
        # glip-official.md section 5, linear probing: cosine_scale has no counterpart in this model
        name_contains=("bbox_pred", "centerness", "dot_product_projection_text", "log_scale", "bias_lang",
                       "bias0"),
        name_excludes=("cls_logits", "scales"),
        # official linear_prob freezes and evals the backbone and language backbone; the head stays in train mode
        eval_modules=("backbone", "language"),
        defaults={**TRAIN_DEFAULTS, **INFERENCE_DEFAULTS},
    )


@REGIMES.register_module(name="prompt-tuning")
def prompt_tuning() -> Regime:
    return Regime(
        name="prompt-tuning",
        description="only the per-position prompt offset added to the text features (official language_prompt_v2)",
        train_groups=("prompt",),
        # official language_prompt_v2 puts the whole RPN head in eval mode (fusion dropout off)
        eval_modules=("backbone", "language", "head"),
        defaults={**TRAIN_DEFAULTS, **INFERENCE_DEFAULTS, "lr": 0.05, "weight_decay": 0.25},
    )


@REGIMES.register_module(name="full-ft")
def full_ft() -> Regime:
    return Regime(
        name="full-ft",
        description="everything but the Swin stem + first stage (FREEZE_CONV_BODY_AT 2) and cls_logits",
        # the prompt offset is not trained: the official full fine-tuning model has no tunable_linear
        train_groups=("backbone", "fpn", "language", "fusion", "head"),
        name_excludes=("cls_logits",),
        # the official Swin _freeze_stages also keeps the frozen patch embedding and first stage in eval mode
        eval_modules=("backbone_stem",),
        stores="all",
        defaults={**TRAIN_DEFAULTS, **INFERENCE_DEFAULTS},
    )


def regime_names() -> list[str]:
    return sorted(REGIMES.module_dict)


def get_regime(name: str) -> Regime:
    """The registered regime `name` (unknown -> UserError listing the valid ones and the closest)."""
    if name not in REGIMES.module_dict:
        raise unknown_name("regime", name, regime_names())
    return REGIMES.get(name)()


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Match an override's type to its default's (ints become floats where a float is expected)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise UserError(f"override {key}={value!r} must be true or false")
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(default, str) and isinstance(value, str):
        return value
    raise UserError(f"override {key}={value!r} must be a {type(default).__name__} like the default {default!r}")


_INT_OR_NONE = ("max_iters", "val_shots", "step_patience", "stop_patience", "copy_factor")


def check_overrides(regime: Regime, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Validate regime overrides (keys and types); returns them coerced. Unknown key -> UserError."""
    out = {}
    for key, value in overrides.items():
        if key not in regime.defaults:
            raise unknown_name(f"{regime.name} setting", key, regime.defaults)
        if key in _INT_OR_NONE:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise UserError(f"override {key}={value!r} must be a non-negative integer (or none)")
            out[key] = value
        else:
            out[key] = _coerce(key, value, regime.defaults[key])
    if out.get("eval_every", 0) < 0:
        raise UserError(f"override eval_every={out['eval_every']} must be >= 0 (0 = no evaluation while training)")
    for key in ("batch_size", "max_epochs", "infer_batch_size"):
        if key in out and out[key] < 1:
            raise UserError(f"override {key}={out[key]} must be >= 1")
    return out


def resolve_hparams(regime: Regime, shots: int | None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The hyper-parameters one run uses: defaults, then overrides, then the per-shot official values."""
    from bench.tasks.fewshot import copy_factor

    hp = dict(regime.defaults)
    hp.update(check_overrides(regime, overrides or {}))
    if not regime.trains:
        return hp
    full = shots is None
    if hp["step_patience"] is None:
        hp["step_patience"] = 2 if full else 3
    if hp["stop_patience"] is None:
        hp["stop_patience"] = 4 if full else 8
    if hp["copy_factor"] is None:
        hp["copy_factor"] = copy_factor(shots)
    if hp["val_shots"] is None and not full:
        hp["val_shots"] = shots
    return hp

