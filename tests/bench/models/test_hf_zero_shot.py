"""Every transformers family, saved tiny with save_pretrained, runs zero-shot through the CLI and leaves a full record."""

from __future__ import annotations

import pytest

from bench.results import store
from bench.tasks.registry import get_task
from bench.testing.hf import FAMILIES, TASK, OneThread, make_data, run_cli, save_tiny


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hf-data"))


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_shot_run_writes_a_record(family, data_root, tmp_path):
    model_dir = save_tiny(family, tmp_path / family)
    with OneThread():
        rc, records = run_cli(model_dir, data_root, tmp_path / "results")
    assert rc == 0
    [record] = records
    assert record["model"]["family"] == family
    assert record["spec"]["model"] == f"hf:{model_dir}"
    assert record["metrics"]["primary"] == "AP"
    assert 0.0 <= record["metrics"]["values"]["AP"] <= 1.0
    task = get_task(TASK)
    limits = record["provenance"]["model_limits"]
    assert limits["family"] == family and limits["score_threshold"] == 0.0
    assert record["provenance"]["detection_caps"]["per_chunk"] == task.detections_per_image
    assert record["provenance"]["num_prompt_chunks"] == 1
    assert record["provenance"]["checkpoint_sha256"]  # the weights file's hash
    assert record["cost"]["total_params"] > 0 and record["cost"]["trainable_params"] == 0
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    preds = store.read_predictions(run_dir)
    ids = {int(c["id"]) for c in task.load(task.eval_split, data_root).categories}
    per_image: dict[int, int] = {}
    for p in preds:
        assert p["category_id"] in ids
        x, y, w, h = p["bbox"]
        assert w >= 0 and h >= 0 and x >= 0 and y >= 0
        per_image[p["image_id"]] = per_image.get(p["image_id"], 0) + 1
    assert per_image and max(per_image.values()) <= task.detections_per_image
