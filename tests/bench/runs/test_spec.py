"""A spec is resolved once into a ResolvedRun; the grid's runs read it instead of re-reading the spec."""

from __future__ import annotations

import pytest

import bench.runs.spec
from bench.models.cache import ModelCache
from bench.results.records import RunSpec
from bench.runs.hparams import RunHParams
from bench.runs.runner import run_grid
from bench.runs.spec import RunContext, expand_grid, resolve, validate_specs
from bench.testing.world import make_world
from bench.util.errors import UserError


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


def test_resolve_fills_in_everything_a_run_reads(world):
    _, data_root = world
    spec = RunSpec(model="glip-tiny", task="runner-shapes-a", regime="prompt-tuning", shots=1, seed=3, split="test",
                   overrides={"fusion": "late", "max_iters": 2})
    run = resolve(spec, data_root)
    assert (run.eval_split, run.train_split, run.val_split) == ("test", "train", "val")
    assert run.splits == ["test", "train", "val"] and run.trains
    assert run.model_overrides == {"fusion": "late"}
    assert isinstance(run.hparams, RunHParams) and (run.hparams.train.max_iters, run.hparams.train.lr) == (2, 0.05)
    zero = resolve(RunSpec(model="glip-tiny", task="runner-shapes-a", regime="zero-shot"), data_root)
    assert (zero.eval_split, zero.train_split, zero.splits, zero.hparams.train) == ("val", None, ["val"], None)
    with pytest.raises(UserError, match="seed -1 is out of range"):
        resolve(RunSpec(model="glip-tiny", task="runner-shapes-a", regime="full-ft", shots=1, seed=-1), data_root)


def test_context_holds_one_model_cache_per_grid():
    ctx = RunContext(device="cpu")
    assert isinstance(ctx.models, ModelCache) and ctx.models.device == "cpu"
    assert RunContext(models=ctx.models).models is ctx.models


def test_a_grid_reads_each_spec_once(world, tmp_path, monkeypatch):
    """validate_specs resolves every spec; running the grid does not tell its overrides apart again."""
    _, data_root = world
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=["zero-shot"], shots=None, seeds=None,
                        overrides={"pre_nms_top_n": 5})
    calls = []
    real = bench.runs.spec.split_overrides
    monkeypatch.setattr(bench.runs.spec, "split_overrides", lambda o, r: calls.append(r) or real(o, r))
    assert [run.spec for run in validate_specs(specs, data_root)] == specs
    assert len(calls) == len(specs) == 2
    calls.clear()
    records = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    assert len(records) == 2 and len(calls) == len(specs)
