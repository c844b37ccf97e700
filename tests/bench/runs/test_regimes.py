"""Regimes as data: which parameters each trains, defaults, overrides; and that training touches only those."""

from __future__ import annotations

import pytest
import torch

from bench.results.records import REGIMES as RECORD_REGIMES
from bench.runs.hparams import resolve_hparams
from bench.runs.regimes import REGIMES, get_regime, regime_names
from bench.runs.train import _set_modes
from bench.util.errors import UserError
from glip.config import get_preset


@pytest.fixture(scope="module")
def tiny():
    from glip.config import get_preset
    from glip.model import GLIP

    torch.manual_seed(0)
    return GLIP(get_preset("glip-tiny"))


def test_registry_matches_record_schema():
    assert set(regime_names()) == set(RECORD_REGIMES)
    assert all(name in REGIMES.module_dict for name in RECORD_REGIMES)
    with pytest.raises(UserError, match="full-ft"):
        get_regime("full-finetune")


def test_selected_parameters(tiny):
    groups = tiny.parameter_groups()
    assert get_regime("zero-shot").trainable_names(groups) == []
    assert get_regime("prompt-tuning").trainable_names(groups) == ["prompt_offset"]
    probe = get_regime("linear-probe").trainable_names(groups)
    # official LINEAR_PROB list (tools/finetune.py): the head's prediction layers minus cls_logits and scales
    expected = sorted(n for n in groups["head"] if n.split(".")[1] in
                      ("bbox_pred", "centerness", "dot_product_projection_text", "log_scale", "bias_lang", "bias0"))
    assert probe == expected and len(probe) == 9
    full = set(get_regime("full-ft").trainable_names(groups))
    everything = {n for v in groups.values() for n in v}
    frozen = everything - full
    assert frozen == set(groups["backbone_stem"]) | {"prompt_offset"} | {n for n in everything if "cls_logits" in n}


def test_defaults_and_resolution():
    pt = resolve_hparams(get_regime("prompt-tuning"), 1).train
    assert (pt.lr, pt.weight_decay, pt.copy_factor, pt.step_patience, pt.stop_patience) == (0.05, 0.25, 8, 3, 8)
    ft = resolve_hparams(get_regime("full-ft"), None).train
    assert (ft.lr, ft.lang_lr, ft.weight_decay, ft.bias_lr_factor, ft.clip_grad) == (1e-4, 1e-5, 0.05, 2.0, 1.0)
    assert (ft.step_patience, ft.stop_patience, ft.copy_factor, ft.val_shots) == (2, 4, 1, None)
    lr = resolve_hparams(get_regime("linear-probe"), 5, {"lr": 1, "max_iters": 3}).train.lr
    assert lr == 1.0 and isinstance(lr, float)  # int -> float
    assert resolve_hparams(get_regime("linear-probe"), 10).train.copy_factor == 1


@pytest.mark.parametrize("overrides, match", [
    ({"learning_rate": 0.1}, "lr"),
    ({"lr": "fast"}, "float"),
    ({"batch_size": 0}, ">= 1"),
    ({"max_iters": -1}, "non-negative"),
    ({"amp": 1}, "true or false"),
])
def test_bad_overrides(overrides, match):
    with pytest.raises(UserError, match=match):
        resolve_hparams(get_regime("full-ft"), 1, overrides)
    with pytest.raises(UserError):
        resolve_hparams(get_regime("zero-shot"), 0, {"lr": 0.1})  # zero-shot trains nothing


@pytest.mark.parametrize("regime", ["linear-probe", "prompt-tuning", "full-ft"])
def test_training_changes_exactly_the_regime_parameters(tiny, regime):
    """One real step with a big LR: every other parameter stays bit-for-bit equal."""
    from bench.runs.train import train
    from bench.testing.training import tiny_detection_samples

    model = tiny
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = model.parameter_groups()
    reg = get_regime(regime)
    trainable = set(reg.trainable_names(groups))
    hp = resolve_hparams(reg, 1, {"max_iters": 1, "batch_size": 1, "lr": 0.01, "eval_every": 0})
    try:
        train(model, tiny_detection_samples(model, n=1), trainable=trainable, hp=hp.train, seed=0, eval_modules=reg.eval_modules)
        after = dict(model.named_parameters())
        changed = {n for n in before if not torch.equal(before[n], after[n])}
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(before[n])
    assert changed <= trainable, f"{sorted(changed - trainable)[:5]} changed but are not trained by {regime}"
    if regime == "prompt-tuning":
        assert changed == {"prompt_offset"}
    elif regime == "linear-probe":
        assert changed == trainable
    else:
        for g in ("backbone", "fpn", "language", "fusion", "head"):
            assert changed & set(groups[g]), f"nothing in group {g} changed"
        assert len(changed) > 0.8 * len(trainable)


def test_stored_parameters(tiny):
    groups = tiny.parameter_groups()
    numel = {n: p.numel() for n, p in tiny.named_parameters()}

    def stored(r):
        return sum(numel[n] for n in get_regime(r).stored_names(groups))

    assert stored("zero-shot") == 0
    assert stored("prompt-tuning") == tiny.prompt_offset.numel() == 1000 * tiny.config.text_hidden
    assert stored("linear-probe") == sum(numel[n] for n in get_regime("linear-probe").trainable_names(groups))
    assert stored("full-ft") == sum(numel.values())


@pytest.mark.parametrize("backbone", ["swin", "conv"])
def test_eval_modules_exist_and_match_frozen_parts(backbone):
    from dataclasses import replace

    from glip.model import GLIP

    model = GLIP(replace(get_preset("glip-tiny"), backbone=backbone))
    groups = model.parameter_groups()
    for name in regime_names():
        for module in get_regime(name).eval_modules:
            if module != "backbone_stem":
                model.get_submodule(module)
    assert get_regime("full-ft").eval_modules == ("backbone_stem",)
    stem = {f"{m}.{n}" for m in model.stem_module_names() for n, _ in model.get_submodule(m).named_parameters()}
    assert stem == set(groups["backbone_stem"])  # full-ft keeps exactly its frozen stem in eval mode
    _set_modes(model, ("backbone_stem",))
    assert all(not model.get_submodule(m).training for m in model.stem_module_names()) and model.head.training
