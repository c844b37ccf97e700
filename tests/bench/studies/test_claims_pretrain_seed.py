"""The pretraining seed as a field of the checkpoint's metadata and of every record's provenance."""

from __future__ import annotations

import json
from pathlib import Path

from bench.results.records import RunSpec
from bench.runs.stages import run_seeds
from bench.studies.demo import PLANS, checkpoint_path
from bench.util.provenance import checkpoint_pretrain_seed


def test_default_pretraining_seed_keeps_the_checkpoint_name(tmp_path: Path) -> None:
    plan = PLANS["quick"]
    default, key = checkpoint_path("deep", plan, tmp_path, 0)
    same, _ = checkpoint_path("deep", plan, tmp_path, 0, pretrain_seed=0)
    other, other_key = checkpoint_path("deep", plan, tmp_path, 0, pretrain_seed=1)
    assert same == default and "pretrain_seed" not in key
    assert other != default and other_key["pretrain_seed"] == 1


def test_records_carry_the_pretraining_seed_of_their_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "glip-synth-deep-abc.safetensors"
    ckpt.write_bytes(b"")
    spec = RunSpec(model="glip-synth", task="synth-novel", regime="full-ft", checkpoint=str(ckpt), shots=1, seed=3)
    assert run_seeds(spec) == {"fewshot": 3, "train": 3}  # no metadata: nothing claimed
    ckpt.with_suffix(".json").write_text(json.dumps({"seed": 0, "pretrain_seed": 2}), encoding="utf-8")
    assert checkpoint_pretrain_seed(ckpt) == 2
    assert run_seeds(spec) == {"fewshot": 3, "train": 3, "pretrain": 2}
    ckpt.with_suffix(".json").write_text("not json", encoding="utf-8")
    assert checkpoint_pretrain_seed(ckpt) is None
    assert checkpoint_pretrain_seed(None) is None


def test_demo_summary_says_it_is_one_pretraining_sample() -> None:
    import pandas as pd

    from bench.studies.demo_extras import demo_summary

    record = {"spec": {"task": "synth-novel", "regime": "full-ft", "shots": 10, "seed": 3, "overrides": {}},
              "metrics": {"primary": "AP", "values": {"AP": 40.0}}}
    text = demo_summary([record], pd.DataFrame(), {}, PLANS["quick"], {"total": 1.0})["markdown"]
    assert "one sample" in text and "glip-bench claims" in text
