"""The few-shot budget as the official recipe scales it: the same epochs for every shot count, each epoch the
k-shot images x GENERAL_COPY (README 1_200_8, 3_200_4, 5_200_2, 10_200_1), with no iteration cap."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from bench.data.training import SampleList, TrainSample
from bench.runs.hparams import TrainHParams, coerce, resolve_hparams
from bench.runs.regimes import get_regime
from bench.runs.train import train
from bench.studies.claims.plan import PLANS as CLAIMS_PLANS
from bench.studies.demo import PLANS, fewshot_overrides
from glip.structures import TrainTarget

OFFICIAL_COPY = {1: 8, 3: 4, 5: 2, 10: 1}


@pytest.mark.parametrize("plan", [*PLANS.values(), *(p.demo for p in CLAIMS_PLANS.values())])
def test_every_shot_count_gets_the_same_epochs_and_its_official_copy(plan):
    for regimes in plan.regimes.values():
        for regime in regimes:
            over = fewshot_overrides(plan, regime)
            for shots in plan.shots:
                hp = resolve_hparams(get_regime(regime), shots, over).train
                assert hp.max_iters is None and hp.max_epochs == plan.fewshot_epochs
                assert hp.copy_factor == OFFICIAL_COPY[shots]


def test_an_iteration_cap_in_a_plan_is_refused():
    plan = PLANS["quick"]
    capped = replace(plan, train_overrides={**plan.train_overrides, "*": {"max_iters": 10}})
    with pytest.raises(ValueError, match="fewshot_epochs x the per-shot GENERAL_COPY"):
        fewshot_overrides(capped, "full-ft")


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def forward(self, images, captions, targets):
        return {"loss": ((self.w - 1) ** 2).sum()}


def view(n: int) -> SampleList:
    t = TrainTarget(boxes_xyxy=torch.zeros(1, 4), positive_map=torch.zeros(1, 256))
    return SampleList([TrainSample(torch.zeros(3, 8, 8), (8, 8), (8, 8), "a", t) for _ in range(n)])


@pytest.mark.parametrize(("images", "shots"), [(3, 1), (21, 10)])
def test_images_seen_are_epochs_x_images_x_copy(images, shots):
    hp = coerce(TrainHParams, {"max_epochs": 2, "copy_factor": OFFICIAL_COPY[shots], "batch_size": 4,
                               "eval_every": 0})
    res = train(Toy(), view(images), trainable=["w"], hp=hp)
    assert res.images_seen == 2 * images * OFFICIAL_COPY[shots] and res.epochs == 2
