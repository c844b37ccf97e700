"""Budgets and grids of the claims study (configuration as data): `PLANS["full"]` and `PLANS["quick"]`.

The study pretrains each fusion variant of the demo from several seeds. Its per-seed budget is the demo's
pretraining (1200 steps: at 600 the models had not yet learned to name the shapes, zero-shot synth-colours
AP 11-23 against the demo's 61-63) with a smaller few-shot grid (1 and 10 shots), so that three pretraining
seeds fit about an hour of a 2-core machine. Seed 0 is the demo's own pretraining run (same hash).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench.studies.demo import PLANS as DEMO_PLANS
from bench.studies.demo import DemoPlan
from bench.util.errors import UserError

SUPERVISED_TASK = "synth-novel"  # the few-shot target; the supervised baseline trains on its whole train split


@dataclass(frozen=True)
class ClaimsPlan:
    """One demo plan (pretraining budget, few-shot grid) run from every seed in `pretrain_seeds`."""

    demo: DemoPlan
    pretrain_seeds: tuple[int, ...]
    zero_shot_tasks: tuple[str, ...] = ("synth-colours", "synth-compositions")
    world_seed: int = 0  # one synthetic world for every pretraining seed: only the training run varies
    # the fully supervised baseline: glip-synth from random init (no pretraining of any kind), late fusion so
    # the constant class prompt makes the text side a learned classifier over the task's classes
    supervised_seeds: tuple[int, ...] = (3, 30, 300)
    supervised_overrides: dict[str, Any] = field(default_factory=dict)


_DEMO_FULL = DEMO_PLANS["full"]
_DEMO_QUICK = DEMO_PLANS["quick"]

PLANS: dict[str, ClaimsPlan] = {
    "full": ClaimsPlan(
        # the demo's pretraining, and 1/10 shots instead of 1/3/5/10
        demo=replace(_DEMO_FULL, shots=(1, 10)),
        pretrain_seeds=(0, 1, 2),
        supervised_overrides={"fusion": "late", "max_iters": 300, "max_epochs": 300, "batch_size": 8, "lr": 1e-3,
                              "lang_lr": 1e-3, "eval_every": 0},
    ),
    "quick": ClaimsPlan(
        # one epoch of the official per-shot budget (k-shot images x GENERAL_COPY), batches of 4
        demo=replace(_DEMO_QUICK, pretrain_iters=6, shots=(1, 10), fewshot_epochs=1, regimes={
            "deep": ("prompt-tuning", "full-ft"), "late": ("prompt-tuning", "full-ft")},
            train_overrides={**_DEMO_QUICK.train_overrides, "*": {"eval_every": 0, "batch_size": 4}}),
        pretrain_seeds=(0, 1),
        supervised_seeds=(3,),
        supervised_overrides={"fusion": "late", "max_iters": 2, "max_epochs": 2, "batch_size": 2, "lr": 1e-3,
                              "lang_lr": 1e-3, "eval_every": 0},
    ),
}


def get_plan(quick: bool, pretrain_seeds: tuple[int, ...] | None = None, workers: int | None = None) -> ClaimsPlan:
    """The plan, with the pretraining seeds and worker count replaced when given."""
    plan = PLANS["quick" if quick else "full"]
    if pretrain_seeds is not None:
        if len(pretrain_seeds) < 2 or len(set(pretrain_seeds)) != len(pretrain_seeds):
            raise UserError(f"--pretrain-seeds {','.join(map(str, pretrain_seeds))}: need at least two distinct "
                            "seeds (an interval over pretraining needs more than one)")
        if min(pretrain_seeds) < 0:
            raise UserError(f"--pretrain-seeds: seeds must be >= 0 (got {min(pretrain_seeds)})")
        plan = replace(plan, pretrain_seeds=tuple(pretrain_seeds))
    if workers is not None:
        if workers < 1:
            raise UserError(f"--workers must be at least 1 (got {workers})")
        plan = replace(plan, demo=replace(plan.demo, workers=workers))
    return plan


def plan_dict(plan: ClaimsPlan) -> dict[str, Any]:
    return asdict(plan)
