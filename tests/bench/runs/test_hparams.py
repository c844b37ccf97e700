"""Typed hyper-parameters: one set of defaults, one coercion naming a bad key, the record's flat mapping."""

from __future__ import annotations

import dataclasses

import pytest

from bench.runs.hparams import (
    InferenceHParams,
    RunHParams,
    TrainHParams,
    coerce,
    resolve_hparams,
)
from bench.runs.regimes import TRAIN_DEFAULTS, get_regime
from bench.util.errors import UserError


def test_record_mapping_lists_training_then_inference_keys():
    """The record's `hparams`: training fields in declaration order, then the inference ones."""
    hp = resolve_hparams(get_regime("full-ft"), 3)
    flat = hp.as_dict()
    assert list(flat) == [f.name for f in dataclasses.fields(TrainHParams)] + ["infer_batch_size", "infer_amp"]
    assert (flat["copy_factor"], flat["val_shots"], flat["lang_lr_groups"]) == (4, 3, ("language",))
    assert resolve_hparams(get_regime("zero-shot"), 0).as_dict() == {"infer_batch_size": 1, "infer_amp": False}


def test_regime_departures_and_overrides_stack():
    hp = resolve_hparams(get_regime("prompt-tuning"), 1, {"weight_decay": 0.5, "infer_batch_size": 4})
    assert (hp.train.lr, hp.train.weight_decay, hp.infer.infer_batch_size) == (0.05, 0.5, 4)
    assert TrainHParams().lr == 1e-4  # the departure is the regime's, not a changed default


def test_unknown_key_names_the_closest_setting():
    with pytest.raises(UserError, match=r"unknown full-ft setting 'weight_decy'\. Did you mean 'weight_decay'\?"):
        resolve_hparams(get_regime("full-ft"), 1, {"weight_decy": 0.1})
    with pytest.raises(UserError, match="infer_batch_size=0 must be >= 1"):
        coerce(InferenceHParams, {"infer_batch_size": 0})
    with pytest.raises(UserError, match="eval_every=-1 must be >= 0"):
        coerce(TrainHParams, {"eval_every": -1})


def test_mappings_coerce_to_the_declared_types():
    hp = coerce(TrainHParams, {"lr": 1, "lang_lr_groups": ["language", "fusion"]})
    assert isinstance(hp.lr, float) and hp.lang_lr_groups == ("language", "fusion")
    assert coerce(TrainHParams, {"clip_grad": None}).clip_grad is None  # no clipping
    assert TRAIN_DEFAULTS == dataclasses.asdict(TrainHParams())
    assert RunHParams(infer=InferenceHParams()).train is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        hp.lr = 2.0  # type: ignore[misc]
