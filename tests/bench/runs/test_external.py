"""External records: challenge-file entries, the per-image cap, and the shipped tasks' metrics (Fixed AP,
Flickr30K recall) applied to another detector's predictions."""

from __future__ import annotations

import json

import pytest

from bench.cli import main as cli_main
from bench.metrics import evaluate
from bench.results import store
from bench.runs import external
from bench.tasks.registry import get_task
from bench.testing.formats import make_flickr_task_data, make_lvis_task_data
from bench.util.errors import UserError

# ODinW-13 data set names as the GLIP configs and the ODinW download spell them, -> our task
CHALLENGE_KEYS = {
    "AerialMaritimeDrone_large": "odinw-aerial-maritime-drone-large", "Aquarium": "odinw-aquarium",
    "CottontailRabbits": "odinw-cottontail-rabbits", "EgoHands_generic": "odinw-egohands-generic",
    "NorthAmericaMushrooms": "odinw-north-america-mushrooms", "Packages": "odinw-packages",
    "PascalVOC": "odinw-pascal-voc", "pistols": "odinw-pistols", "pothole": "odinw-pothole",
    "Raccoon": "odinw-raccoon", "ShellfishOpenImages": "odinw-shellfish-open-images",
    "thermalDogsAndPeople": "odinw-thermal-dogs-and-people", "VehiclesOpenImages": "odinw-vehicles-open-images",
}


def test_a_challenge_file_entry_is_found_for_every_odinw13_task():
    data = {key: [{"entry": key}] for key in CHALLENGE_KEYS}
    for key, name in CHALLENGE_KEYS.items():
        (sel,) = external.select_entries(data, get_task(name), "sub.json")
        assert sel.dataset == key and sel.predictions == [{"entry": key}] and sel.seed is None
    with pytest.raises(UserError, match=r"no entry for task odinw-pothole \(looked for odinw-pothole, pothole\); "
                                         r"its keys: 'Aquarium'. Pass --dataset KEY"):
        external.select_entries({"Aquarium": []}, get_task("odinw-pothole"), "sub.json")
    (sel,) = external.select_entries({"x": [1]}, get_task("odinw-pothole"), "sub.json", dataset="x")
    assert sel.predictions == [1]


def test_seeds_of_a_few_shot_entry():
    data = {"Aquarium": {"3": [1], "30": [2], "300": [3]}}
    sels = external.select_entries(data, get_task("odinw-aquarium"), "sub.json")
    assert [(s.seed, s.predictions) for s in sels] == [(3, [1]), (30, [2]), (300, [3])]
    (only,) = external.select_entries(data, get_task("odinw-aquarium"), "sub.json", seed=30)
    assert only.predictions == [2] and only.where("sub.json") == "sub.json, entry 'Aquarium' seed 30"
    with pytest.raises(UserError, match="key 'three' is not a few-shot seed"):
        external.select_entries({"Aquarium": {"three": []}}, get_task("odinw-aquarium"), "sub.json")


def test_cap_per_image_keeps_the_top_scores_in_input_order():
    dets = [{"image_id": 1, "score": s, "n": i} for i, s in enumerate([0.1, 0.9, 0.5, 0.9, 0.3])]
    dets.append({"image_id": 2, "score": 0.0, "n": 5})
    kept, dropped = external.cap_per_image(dets, 3)
    assert [d["n"] for d in kept] == [1, 2, 3, 5] and dropped == 2
    ties = [{"image_id": 1, "score": 0.5, "n": i} for i in range(3)]
    assert [d["n"] for d in external.cap_per_image(ties, 2)[0]] == [0, 1]  # a tie keeps the earlier one
    assert external.cap_per_image(dets, None) == (dets, 0)
    assert external.cap_per_image(dets, 10) == (dets, 0)


def _score(*argv):
    return cli_main(["score", *argv])


def test_lvis_task_is_scored_with_fixed_ap_and_no_per_image_cap(tmp_path):
    task = get_task("lvis-minival")
    gt = make_lvis_task_data(task, tmp_path / "data", [(1, "cat", "f"), (2, "dog", "c"), (3, "owl", "r")])
    image = gt["images"][0]
    true = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.5}
            for a in gt["annotations"]]
    # 400 detections on one image: over the 300 an LVIS run keeps per image, but Fixed AP caps per class
    junk = [{"image_id": image["id"], "category_id": 1, "bbox": [0.0, 0.0, 1.0, 1.0], "score": 0.9}
            for _ in range(400)]
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(junk + true))
    assert _score("--task", task.name, "--predictions", str(path), "--data-root", str(tmp_path / "data"),
                  "--results", str(tmp_path / "res"), "--model-name", "m") == 0
    (rec,) = store.load_records(tmp_path / "res")
    assert rec["task"]["metric"] == "lvis_fixed_ap"
    assert rec["external"]["protocol"]["per_image_cap_applied"] is None
    assert rec["external"]["protocol"]["dropped_by_cap"] == 0
    want = evaluate("lvis_fixed_ap", task.load(None, tmp_path / "data").coco, junk + true)
    assert json.dumps(rec["metrics"]["values"]) == json.dumps(want.values)
    capped = evaluate("lvis_fixed_ap", task.load(None, tmp_path / "data").coco,
                      external.cap_per_image(junk + true, 300)[0])
    assert want.values["AP"] != capped.values["AP"]  # so the cap not being applied is what the check sees


def _perfect_grounding(entries):
    return [{"image_id": e["image_id"], "boxes": [p["boxes"] for p in e["phrases"]],
             "scores": [[1.0] * len(p["boxes"]) for p in e["phrases"]]} for e in entries]


def test_flickr_task_is_scored_with_recall_at_k(tmp_path, capsys):
    task = get_task("flickr30k-val")
    data_root = tmp_path / "data"
    make_flickr_task_data(task, data_root)
    entries = task.load(None, data_root).entities
    preds = _perfect_grounding(entries)
    preds[0] = {**preds[0], "boxes": [[] for _ in preds[0]["boxes"]], "scores": [[] for _ in preds[0]["boxes"]]}
    path = tmp_path / "grounding.json"
    path.write_text(json.dumps(preds))
    assert _score("--task", task.name, "--predictions", str(path), "--data-root", str(data_root),
                  "--results", str(tmp_path / "res"), "--model-name", "m") == 0
    (rec,) = store.load_records(tmp_path / "res")
    assert rec["metrics"]["primary"] == "R@1" and rec["task"]["metric"] == "flickr_recall"
    want = evaluate("flickr_recall", entries, preds)
    assert rec["metrics"]["values"]["R@1"] == pytest.approx(want.values["R@1"])
    assert 0 < rec["metrics"]["values"]["R@1"] < 100  # the emptied entry is a miss, the others hits
    assert rec["external"]["protocol"]["per_image_cap_applied"] is None

    path.write_text(json.dumps(preds[1:]))  # an entry without a prediction
    assert _score("--task", task.name, "--predictions", str(path), "--data-root", str(data_root),
                  "--results", str(tmp_path / "res2")) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "no grounding prediction for entry image_id" in err
    assert not (tmp_path / "res2").exists()
