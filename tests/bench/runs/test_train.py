"""The training loop on mmengine pieces: official param groups, clipping, plateau LR, early stop, best weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bench.data.training import SampleList, TrainSample
from bench.runs.hparams import TrainHParams, coerce
from bench.runs.train import build_optimizer, load_adapter, save_adapter, train
from glip.structures import TrainTarget


class Toy(nn.Module):
    """Parameters named like GLIP's (language.*, *bias*), a loss pulling them towards 1."""

    def __init__(self) -> None:
        super().__init__()
        self.language = nn.Linear(2, 2)
        self.head = nn.Module()
        self.head.w = nn.Parameter(torch.zeros(4))
        self.head.bias_lang = nn.Parameter(torch.zeros(2))
        self.scale = 1.0

    def parameter_groups(self) -> dict[str, list[str]]:
        return {"language": ["language.weight", "language.bias"], "head": ["head.w", "head.bias_lang"]}

    def forward(self, images, captions, targets):
        params = torch.cat([p.flatten() for p in self.parameters()])
        return {"loss": self.scale * ((params - 1) ** 2).sum()}


def samples(n=3):
    t = TrainTarget(boxes_xyxy=torch.zeros(1, 4), positive_map=torch.zeros(1, 256))
    return SampleList([TrainSample(torch.zeros(3, 8, 8), (8, 8), (8, 8), "a", t) for _ in range(n)])


def hp(**kw):
    return coerce(TrainHParams, {"copy_factor": 1, "step_patience": 3, "stop_patience": 8, **kw})


def test_official_param_groups():
    model = Toy()
    opt = build_optimizer(model, hp(lr=1e-4, lang_lr=1e-5, weight_decay=0.05), "cpu")
    got = {g["name"]: (g["lr"], g["weight_decay"]) for g in opt.param_groups if g["params"]}
    # maskrcnn_benchmark/solver/build.py: language -> LANG_LR; "bias" in name -> LR x2, no decay
    assert got == {"language.weight": (1e-5, 0.05), "language.bias": (2e-5, 0.0), "head.w": (1e-4, 0.05),
                   "head.bias_lang": (2e-4, 0.0)}
    model.head.w.requires_grad_(False)
    assert "head.w" not in {g.get("name") for g in build_optimizer(model, hp(), "cpu").param_groups}


def test_lang_lr_can_cover_more_groups():
    """The demo's from-scratch pretraining puts the head's text-side layers at the language LR as well."""
    got = {g["name"]: g["lr"] for g in build_optimizer(Toy(), hp(lr=1e-3, lang_lr=1e-4, lang_lr_groups=("language", "head")),
                                                       "cpu").param_groups if g["params"]}
    assert got == {"language.weight": 1e-4, "language.bias": 2e-4, "head.w": 1e-4, "head.bias_lang": 2e-4}


def test_final_decay_falls_linearly_to_lr_factor_over_the_last_steps():
    from bench.runs.train import final_decay

    opt = build_optimizer(Toy(), hp(lr=1.0, lang_lr=1.0, bias_lr_factor=1.0, max_iters=8, final_decay=0.5), "cpu")
    decay = final_decay(opt, hp(max_iters=8, final_decay=0.5, lr_factor=0.1))
    seen = []
    for _ in range(8):
        seen.append(round(opt.param_groups[0]["lr"], 6))
        opt.step()
        decay.step()
    assert seen == [1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.4, 0.1]
    assert final_decay(opt, hp()) is None  # off by default (official)
    with pytest.raises(ValueError, match="needs max_iters"):
        final_decay(opt, hp(final_decay=0.25, max_iters=None))


def test_gradient_clipping_full_model():
    model = Toy()
    model.scale = 1000.0
    before = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
    train(model, samples(1), trainable=[n for n, _ in model.named_parameters()], device="cpu",
          hp=hp(optimizer="SGD", lr=1.0, lang_lr=1.0, bias_lr_factor=1.0, weight_decay=0.0, bias_weight_decay=0.0,
                clip_grad=1.0, max_iters=1, batch_size=1, eval_every=0))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert math.isclose(float((after - before).norm()), 1.0, rel_tol=1e-4)  # one SGD step of a unit-norm gradient


def test_early_stop_plateau_and_best_weights():
    model = Toy()
    script = iter([1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    seen = []

    def evaluate(m):
        assert not m.training
        seen.append(m.head.w.detach().clone())
        return next(script)

    res = train(model, samples(3), trainable=["head.w"], device="cpu", evaluate=evaluate,
                hp=hp(lr=0.01, batch_size=1, max_epochs=50, step_patience=1, stop_patience=3, lr_factor=0.1))
    # official auto-termination: equal counts as a gain (best at eval 3); 3 misses in a row stop at eval 6
    assert res.stopped_early and len(res.history) == 6 and res.best_epoch == 3 and res.best_metric == 2.0
    assert torch.equal(model.head.w.detach(), seen[2])  # the best weights are restored
    lrs = [h["lr"] for h in res.history]
    # mmengine ReduceOnPlateauLR (torch ReduceLROnPlateau semantics, as the official WarmupReduceLROnPlateau):
    # an equal value is no improvement; LR x0.1 once more than `patience` evaluations in a row miss
    assert lrs[:3] == [0.01, 0.01, 0.01] and math.isclose(lrs[3], 1e-3) and math.isclose(lrs[4], 1e-3)
    assert math.isclose(lrs[5], 1e-4)
    assert res.iters == 18 and res.images_seen == 18 and res.epochs == 6


def test_budget_and_copy_factor():
    model = Toy()
    res = train(model, samples(3), trainable=["head.w"], device="cpu",
                hp=hp(batch_size=2, copy_factor=4, max_epochs=100, max_iters=5, eval_every=0))
    # an epoch is 3 images x 4 copies = 12 samples = 6 batches of 2; the budget stops after 5 iterations
    assert (res.iters, res.images_seen) == (5, 10) and math.isclose(res.epochs, 5 / 6)
    res = train(Toy(), samples(3), trainable=["head.w"], device="cpu", evaluate=lambda m: 0.0,
                hp=hp(batch_size=3, max_epochs=2, eval_every=1))
    assert [h["epoch"] for h in res.history] == [1, 2] and res.iters == 2


def test_a_run_shows_its_training_steps_with_loss_and_eta(monkeypatch, capsys):
    """A fine-tuning run draws a bar over its optimiser steps (count, rate, ETA, running loss), so a long run
    is never silent; GLIP_BENCH_NO_PROGRESS turns it off."""
    monkeypatch.delenv("GLIP_BENCH_NO_PROGRESS", raising=False)
    train(Toy(), samples(3), trainable=["head.w"], device="cpu", hp=hp(batch_size=1, max_epochs=2, eval_every=0),
          progress=("train toy full-ft 1-shot seed 3", None))
    err = capsys.readouterr().err
    assert "train toy full-ft 1-shot seed 3" in err and "6/6" in err and "step" in err and "loss=" in err
    assert "<" in err  # tqdm's elapsed<remaining: the ETA
    monkeypatch.setenv("GLIP_BENCH_NO_PROGRESS", "1")
    train(Toy(), samples(3), trainable=["head.w"], device="cpu", hp=hp(batch_size=1, max_epochs=1, eval_every=0),
          progress=("silent", None))
    assert "silent" not in capsys.readouterr().err


def test_nonfinite_loss_is_skipped():
    model = Toy()
    model.scale = float("nan")
    res = train(model, samples(2), trainable=["head.w"], device="cpu", hp=hp(batch_size=1, max_iters=2, eval_every=0))
    assert res.skipped_nonfinite == 2 and torch.equal(model.head.w.detach(), torch.zeros(4))


def test_safetensors_round_trip(tmp_path):
    a, b = Toy(), Toy()
    with torch.no_grad():
        a.head.w.add_(3.0)
    save_adapter(a, tmp_path / "w.safetensors")
    assert "head.w" in load_adapter(b, tmp_path / "w.safetensors")
    assert torch.equal(a.head.w, b.head.w)
    save_adapter(a, tmp_path / "part.safetensors", names=["head.w"])
    with pytest.raises(KeyError):
        load_adapter(nn.Linear(1, 1), tmp_path / "part.safetensors")
