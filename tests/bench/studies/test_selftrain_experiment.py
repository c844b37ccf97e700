"""The self-training experiment's parts (data, pseudo-label quality, bootstrap) and one tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench.studies.selftrain.experiment import (
    BUDGETS,
    Budget,
    draw_eval,
    draw_unlabelled,
    get_budget,
    pseudo_quality,
    run_experiment,
)
from bench.studies.selftrain.phrases import extract_rule
from bench.synthetic.concepts import BASE_SHAPES, COLOURS
from bench.util.errors import UserError


def test_unlabelled_captions_name_the_novel_object_by_a_known_colour(tmp_path):
    captions, img_dir, truth = draw_unlabelled("hexagon", 6, 0, tmp_path)
    records = [json.loads(line) for line in captions.read_text().splitlines()]
    assert len(records) == len(truth) == 6
    for r in records:
        phrases = [p.text for p in extract_rule(r["caption"])]
        art, colour, shape = phrases[0].split()
        assert shape == "hexagon" and colour in COLOURS and art in ("a", "the")
        assert phrases[1].split()[-1] in BASE_SHAPES and len(phrases) == 2
        # the true box is the novel object's: its pixels have the named colour at the box centre row
        x1, y1, x2, y2 = (int(v) for v in truth[r["id"]])
        arr = np.asarray(Image.open(img_dir / r["file_name"]))
        patch = arr[y1: y2 + 1, x1: x2 + 1].reshape(-1, 3)
        assert (np.abs(patch.astype(int) - COLOURS[colour]).sum(1) == 0).mean() > 0.3


def test_eval_set_has_the_concept_in_every_image(tmp_path):
    coco, paths = draw_eval("crescent", 5, 0, tmp_path)
    assert len(paths) == 5 and {a["image_id"] for a in coco["annotations"]} == {1, 2, 3, 4, 5}


def test_pseudo_quality_hand_case(tmp_path):
    data = {"images": [{"id": 1, "phrase_spans": [[0, 14], [24, 35]]}, {"id": 2, "phrase_spans": [[0, 9], [18, 26]]}],
            "annotations": [
                {"image_id": 1, "tokens_positive": [[0, 14]], "bbox": [10, 10, 10, 10]},  # IoU 1 with truth
                {"image_id": 1, "tokens_positive": [[0, 14]], "bbox": [40, 40, 10, 10]},  # miss
                {"image_id": 1, "tokens_positive": [[24, 35]], "bbox": [10, 10, 10, 10]},  # other phrase: ignored
                {"image_id": 2, "tokens_positive": [[0, 9]], "bbox": [0, 0, 4, 4]},  # miss
            ]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    q = pseudo_quality(path, {1: [10, 10, 19, 19], 2: [50, 50, 60, 60]})
    assert q == {"novel_boxes": 3, "novel_precision": pytest.approx(1 / 3), "novel_recall": 0.5}


def test_budgets():
    assert get_budget("quick") is BUDGETS["quick"]
    assert len(BUDGETS["full"].seeds) >= 3 and len(BUDGETS["quick"].seeds) >= 2
    with pytest.raises(UserError, match="full"):
        get_budget("fulll")


@pytest.mark.slow  # ~25 s of CPU: five glip-tiny training steps, eight small evaluations
def test_tiny_run_end_to_end(tmp_path):
    """Teacher pretrained here for one step (glip-tiny), two seeds, control on: table, CSVs, figure, provenance."""
    budget = Budget(seeds=(0, 1), unlabelled_images=3, eval_images=3, student_iters=1, batch_size=2, teacher_iters=1,
                    teacher_images=3, threshold=0.0, control=True)
    out = run_experiment(tmp_path / "results", preset="glip-tiny", budget=budget, work_dir=tmp_path / "work")
    table = out["table"]
    assert list(table["seed"]) == [0, 1]
    for col in ("teacher_ap", "student_ap", "control_ap"):
        assert table[col].between(0, 100).all()
    assert np.allclose(table["student_minus_teacher"], table["student_ap"] - table["teacher_ap"])
    assert set(out["summary"]["quantity"]) >= {"teacher_ap", "student_ap", "control_ap", "student_minus_teacher"}
    png = tmp_path / "results" / "selftrain.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "results" / "selftrain.json").read_text())
    from bench.util.io import sha256_file

    for seed in (0, 1):
        prov = saved["provenance"][f"seed{seed}"]
        assert prov["teacher_checkpoint_sha256"] == sha256_file(tmp_path / "work" / "teacher.safetensors")
        assert prov["pseudo_labels_sha256"] == sha256_file(tmp_path / "work" / f"seed{seed}" / "pseudo.json")
    with pytest.raises(UserError, match="novel shape"):
        run_experiment(tmp_path / "r2", concept="star", budget=budget)
