"""Batches for the transformers families whose processor resizes every image to one size (OWLv2, OWL-ViT,
OmDet-Turbo): the images of a batch share the prompts, and batch 4 gives batch 1's detections."""

from __future__ import annotations

import pytest

from bench.results import store
from bench.testing.hf import OneThread, make_data, run_cli, save_tiny


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hf-data"))


@pytest.mark.parametrize("family", ["owlv2", "owlvit", "omdet-turbo"])
def test_batch_4_gives_the_detections_of_batch_1(family, data_root, tmp_path):
    model_dir = save_tiny(family, tmp_path / family)
    with OneThread():
        rc1, [one] = run_cli(model_dir, data_root, tmp_path / "one")
        rc4, [four] = run_cli(model_dir, data_root, tmp_path / "four", "--set", "infer_batch_size=4")
    assert rc1 == rc4 == 0
    assert one["provenance"]["model_limits"]["infer_batch_size"] == 1
    assert four["provenance"]["model_limits"]["infer_batch_size"] == 4 and four["hparams"]["infer_batch_size"] == 4
    p1, p4 = (store.read_predictions(next((tmp_path / d / "runs").iterdir())) for d in ("one", "four"))
    assert len(p1) == len(p4) > 0
    key = lambda p: (p["image_id"], -p["score"], p["category_id"])  # noqa: E731
    for a, b in zip(sorted(p1, key=key), sorted(p4, key=key)):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        assert abs(a["score"] - b["score"]) < 1e-5
        assert max(abs(x - y) for x, y in zip(a["bbox"], b["bbox"])) < 1e-3
    assert four["metrics"]["values"]["AP"] == pytest.approx(one["metrics"]["values"]["AP"], abs=1e-6)
