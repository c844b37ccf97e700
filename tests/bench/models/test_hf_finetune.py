"""Full fine-tuning of the caption families (their transformers classes return a loss) through the CLI."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from bench.results import store
from bench.testing.hf import OneThread, make_data, run_cli, save_tiny


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hf-data"))


@pytest.mark.parametrize("family", ["grounding-dino", "mm-grounding-dino"])
def test_full_ft_one_shot_lowers_the_loss_and_moves_the_weights(family, data_root, tmp_path):
    model_dir = save_tiny(family, tmp_path / family)
    with OneThread():
        rc, records = run_cli(model_dir, data_root, tmp_path / "results", "--shots", "1", "--seeds", "3",
                              "--set", "max_epochs=3", "--set", "lr=0.001", regime="full-ft")
    assert rc == 0
    [record] = records
    losses = record["training"]["epoch_losses"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert record["fewshot"]["train_images_with_boxes"] > 0
    assert record["spec"]["shots"] == 1 and record["spec"]["seed"] == 3
    assert len(record["training"]["history"]) == 3  # the val split scored after every epoch (early stopping)
    assert record["cost"]["trainable_params"] == record["cost"]["total_params"]
    assert record["provenance"]["train_flip_prob"] == 0.5
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    tuned = load_file(str(run_dir / store.ADAPTER))
    base = load_file(str(model_dir / "model.safetensors"))
    moved = [k for k, v in tuned.items() if k.removeprefix("model.") in base
             and not base[k.removeprefix("model.")].equal(v)]
    assert len(moved) > len(tuned) // 2
