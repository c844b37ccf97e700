"""A GLIP fine-tuning run trains on the official multi-scale input pipeline and its record says so."""

from __future__ import annotations

from bench.runs.runner import run_grid
from bench.runs.spec import RunContext, expand_grid
from bench.testing.world import make_world


def test_full_ft_record_shows_the_multi_scale_recipe(tmp_path, monkeypatch):
    _, data_root = make_world(tmp_path, monkeypatch)
    sizes = [48, 64, 80]  # glip-tiny's test scale is 64; a multi-scale list as the official one (480..800)
    specs = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["full-ft"], shots=[1], seeds=[3],
                        overrides={"max_iters": 2, "batch_size": 1, "eval_every": 0, "infer_batch_size": 4,
                                   "train_min_sizes": sizes, "train_max_size": 120})
    (record,) = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    assert record["provenance"]["train_input"] == {"train_min_sizes": sizes, "train_max_size": 120, "flip_prob": 0.5}
    assert record["model"]["overrides"]["train_min_sizes"] == sizes
    assert record["training"]["iters"] == 2
