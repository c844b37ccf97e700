"""Referring expressions with transformers detectors: the caption families (Grounding DINO, MM Grounding DINO)
ground each expression; the per-class query families are refused before any compute, with the reason."""

from __future__ import annotations

import pytest

from bench.testing.hf import OneThread, run_cli, save_tiny


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from bench.synthetic.generate import generate

    root = tmp_path_factory.mktemp("hf-refexp-data")
    generate(root, scale=0.01, tasks=["synth-refexp"])
    return root


@pytest.mark.parametrize("family", ["grounding-dino", "mm-grounding-dino"])
def test_caption_families_ground_the_synthetic_expressions(family, data_root, tmp_path):
    model = save_tiny(family, tmp_path / family)
    with OneThread():
        rc, records = run_cli(model, data_root, tmp_path / "results", task="synth-refexp")
    assert rc == 0
    [record] = records
    assert record["task"]["metric"] == "rec_accuracy" and record["metrics"]["primary"] == "Acc@0.5"
    assert set(record["metrics"]["values"]) == {"Acc@0.5", "P@5", "P@10", "Acc@0.5_giou"}


@pytest.mark.parametrize("family", ["owlv2", "owlvit", "omdet-turbo"])
def test_query_families_are_refused_with_the_reason(family, data_root, tmp_path, capsys):
    model = save_tiny(family, tmp_path / family)
    rc, records = run_cli(model, data_root, tmp_path / "results", task="synth-refexp")
    assert rc == 2 and records == []
    assert f"{family} cannot run phrase grounding" in capsys.readouterr().err
