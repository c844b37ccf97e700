"""`--set protocol=published`: a family's own published evaluation settings, recorded and shown as the variant;
refused by name where the family has none here."""

from __future__ import annotations

import pytest

from bench.models.families.grounding_dino import PUBLISHED
from bench.reports.load import variant_label
from bench.results import store
from bench.results.records import RunSpec
from bench.testing.hf import OneThread, make_data, run_cli, save_tiny


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hf-data"))


def test_grounding_dino_published_keeps_300_detections_per_image(data_root, tmp_path):
    model_dir = save_tiny("grounding-dino", tmp_path / "gd")
    with OneThread():
        rc, [task] = run_cli(model_dir, data_root, tmp_path / "task")
        rc2, [published] = run_cli(model_dir, data_root, tmp_path / "published", "--set", "protocol=published")
    assert rc == rc2 == 0
    limits = published["provenance"]["model_limits"]
    assert limits["protocol"] == "published" and limits["published_settings"] == PUBLISHED
    assert task["provenance"]["model_limits"]["protocol"] == "task"
    assert "protocol=published" in variant_label(RunSpec.from_dict(published["spec"]))
    per_image: dict[int, int] = {}
    for p in store.read_predictions(next((tmp_path / "published" / "runs").iterdir())):
        per_image[p["image_id"]] = per_image.get(p["image_id"], 0) + 1
    cap = task["provenance"]["detection_caps"]["per_chunk"]
    # the tiny model has 30 queries x 8 classes = 240 pairs per image: more than the task's cap, all under 300
    assert cap < 240 and set(per_image.values()) == {240}


@pytest.mark.parametrize(("family", "message"), [
    ("omdet-turbo", "omdet-turbo has no protocol=published here: no published setting differs from the task protocol"),
    ("sam3", "sam3 has no protocol=published here: its authors publish no LVIS / COCO box evaluation settings"),
])
def test_families_without_published_settings_refuse_it(family, message, data_root, tmp_path, capsys):
    rc, records = run_cli(save_tiny(family, tmp_path / family), data_root, tmp_path / "r", "--set", "protocol=published")
    assert rc == 2 and records == [] and message in capsys.readouterr().err


def test_glip_refuses_a_published_protocol_other_than_the_tasks(data_root, tmp_path, capsys):
    from bench.cli import main

    rc = main(["run", "--model", "glip-tiny", "--tasks", "synth-shapes", "--regime", "zero-shot", "--data-root",
               str(data_root), "--results", str(tmp_path / "r"), "--set", "protocol=published"])
    assert rc == 2 and "GLIP's published evaluation is the tasks' protocol" in capsys.readouterr().err
