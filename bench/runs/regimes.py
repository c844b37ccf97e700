"""Transfer regimes as data: what trains, which modules stay in eval mode, and default hyper-parameters.

Each regime is registered in an mmengine Registry ("regime") by a small function returning a frozen
`Regime`; every default can be overridden per run (`--set key=value`, RunSpec.overrides). The numbers
follow the official fine-tuning flow (microsoft/GLIP `tools/finetune.py`, `tuning_highlevel_override`, and
the README's fine-tuning commands):

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

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mmengine.registry import Registry

from bench.runs.hparams import TrainHParams, resolve_hparams
from bench.util.errors import unknown_name

REGIMES = Registry("regime")

# A plain view of the training defaults (bench.runs.hparams.TrainHParams), for callers that build mappings
TRAIN_DEFAULTS: dict[str, Any] = dataclasses.asdict(TrainHParams())


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
    train_defaults: Mapping[str, Any] = field(default_factory=dict)  # departures from TrainHParams' defaults

    @property
    def defaults(self) -> dict[str, Any]:
        """Every setting a run of this regime may override, with its default before per-shot resolution."""
        return resolve_hparams(self, shots=None, resolve_per_shot=False).as_dict()

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
                  stores="nothing")


@REGIMES.register_module(name="linear-probe")
def linear_probe() -> Regime:
    return Regime(
        name="linear-probe",
        description="only the head's prediction layers (official LINEAR_PROB list)",
        train_groups=("head",),
        # microsoft/GLIP tools/finetune.py + GeneralizedVLRCNN.train (LINEAR_PROB): cosine_scale has no counterpart here
        name_contains=("bbox_pred", "centerness", "dot_product_projection_text", "log_scale", "bias_lang",
                       "bias0"),
        name_excludes=("cls_logits", "scales"),
        # official linear_prob freezes and evals the backbone and language backbone; the head stays in train mode
        eval_modules=("backbone", "language"),
    )


@REGIMES.register_module(name="prompt-tuning")
def prompt_tuning() -> Regime:
    return Regime(
        name="prompt-tuning",
        description="only the per-position prompt offset added to the text features (official language_prompt_v2)",
        train_groups=("prompt",),
        # official language_prompt_v2 puts the whole RPN head in eval mode (fusion dropout off)
        eval_modules=("backbone", "language", "head"),
        train_defaults={"lr": 0.05, "weight_decay": 0.25},
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
    )


def regime_names() -> list[str]:
    return sorted(REGIMES.module_dict)


def get_regime(name: str) -> Regime:
    """The registered regime `name` (unknown -> UserError listing the valid ones and the closest)."""
    if name not in REGIMES.module_dict:
        raise unknown_name("regime", name, regime_names())
    return REGIMES.get(name)()
