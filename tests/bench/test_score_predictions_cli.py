"""`glip-bench score --predictions`: another detector's predictions under a task's protocol, and bare pairs."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from bench.cli import main as cli_main
from bench.reports import leaderboard as lb
from bench.reports.load import load_record_frame
from bench.results import store
from bench.runs import external
from bench.runs.runner import run_grid
from bench.runs.spec import RunContext, expand_grid
from bench.testing.world import make_world
from bench.util.io import sha256_file

TASK = "runner-shapes-a"


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """A finished zero-shot glip-tiny run on TASK, made once for the module: (data root, results, run folder,
    record). Tests that change the run's files work on a copy (`_copy_of`)."""
    tmp = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        _, data_root = make_world(tmp, mp)
        # pre_nms_thresh 0: the untrained model's low scores still make detections (at the default it keeps none)
        specs = expand_grid(models=["glip-tiny"], tasks=TASK, regimes=["zero-shot"], shots=None, seeds=None,
                            overrides={"infer_batch_size": 4, "pre_nms_thresh": 0.0})
        (record,) = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp / "results"))
        yield data_root, tmp / "results", store.run_dir(tmp / "results", specs[0]), record


def _copy_of(results, tmp_path):
    import shutil

    return shutil.copytree(results, tmp_path / "results-copy")


def _gt(data_root, split="val"):
    return json.loads((data_root / "runner" / TASK / split / "ann.json").read_text())


def _perfect(data_root, split="val"):
    """The ground truth as detections (AP 100)."""
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
            for a in _gt(data_root, split)["annotations"]]


def _score(*argv):
    return cli_main(["score", *argv])


def _same(a, b):
    """Equal metric sections, NaN equal to NaN (as the record files write them)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _score_file(path, data_root, out, *extra):
    assert _score("--task", TASK, "--predictions", str(path), "--data-root", str(data_root),
                  "--results", str(out), *extra) == 0
    (folder,) = (out / external.FOLDER).iterdir()
    return folder, store.load_record(folder / store.RECORD)


def test_score_predictions_of_a_run_gives_the_runs_metrics(one_run, tmp_path, capsys):
    data_root, _, folder, record = one_run
    preds_file = folder / store.PREDICTIONS
    assert len(store.read_predictions(folder)) > 0  # the run's file holds detections to score
    ext_folder, ext = _score_file(preds_file, data_root, tmp_path / "other", "--model-name", "copy")
    printed = capsys.readouterr().out
    assert ext["kind"] == external.KIND
    assert _same(ext["metrics"]["values"], record["metrics"]["values"])
    assert _same(ext["metrics"]["per_class"], record["metrics"]["per_class"])
    assert f"copy on {TASK} val: AP {record['metrics']['values']['AP']:.2f}" in printed
    # the protocol it was scored under, the file it came from, and what the harness cannot know
    assert ext["task"] == record["task"]
    assert ext["external"]["predictions_sha256"] == sha256_file(preds_file)
    assert ext["external"]["protocol"]["per_image_cap_applied"] == 100
    assert ext["external"]["protocol"]["dropped_by_cap"] == 0
    assert ext["provenance"]["detection_caps"] == {"per_image": 100, "dropped": 0}
    assert ext["spec"]["model"] == "copy" and ext["spec"]["prompt_set"] == external.PROMPT_SET
    assert set(ext["cost"].values()) == {None}
    # the saved copy rescores to the same numbers through the harness's own rescore
    assert _score("--run", str(ext_folder), "--data-root", str(data_root)) == 0
    assert "0 changed" in capsys.readouterr().out


def test_score_predictions_matches_the_harness_on_a_middling_file(one_run, tmp_path):
    """The untrained glip-tiny scores 0 AP, so the same check on a file whose AP is neither 0 nor 100: the
    run's predictions replaced by jittered, partly mislabelled true boxes and rescored by the harness."""
    import random

    data_root, results, folder, _ = one_run
    folder = _copy_of(results, tmp_path) / folder.relative_to(results)
    rng = random.Random(0)
    preds = []
    for det in _perfect(data_root):
        x, y, w, h = det["bbox"]
        preds.append({**det, "bbox": [x + rng.uniform(-3, 3), y + rng.uniform(-3, 3), w, h],
                      "category_id": det["category_id"] if rng.random() < 0.7 else 3 - det["category_id"],
                      "score": rng.random()})
    store.write_predictions(folder, preds)
    assert _score("--run", str(folder), "--data-root", str(data_root)) == 0
    rescored = store.load_record(folder / store.RECORD)
    assert 0 < rescored["metrics"]["values"]["AP"] < 100
    _, ext = _score_file(folder / store.PREDICTIONS, data_root, tmp_path / "other")
    assert _same(ext["metrics"], rescored["metrics"])


def test_the_task_cap_is_applied_and_recorded(one_run, tmp_path):
    data_root, _, _, _ = one_run
    gt = _gt(data_root)
    image = gt["images"][0]["id"]
    # 120 low-scored false positives on one image, and the true boxes above them
    junk = [{"image_id": image, "category_id": 1, "bbox": [0.0, 0.0, 2.0, 2.0], "score": 0.01} for _ in range(120)]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(junk + _perfect(data_root)))
    folder, rec = _score_file(path, data_root, tmp_path / "res")
    n_true = sum(a["image_id"] == image for a in gt["annotations"])
    assert rec["external"]["protocol"]["dropped_by_cap"] == 120 + n_true - 100
    assert rec["spec"]["model"] == "dets"  # default name: the file's
    kept = store.read_predictions(folder)
    assert sum(d["image_id"] == image for d in kept) == 100
    assert rec["metrics"]["values"]["AP"] == pytest.approx(100.0)  # the true boxes outscore what was cut


def test_odinw_challenge_files_pick_the_task_entry(one_run, tmp_path):
    data_root, _, _, _ = one_run
    val, test = _perfect(data_root), _perfect(data_root, "test")
    zero = tmp_path / "zero.json"
    zero.write_text(json.dumps({"RunnerShapes_A": val[:2], "runner-shapes-b": []}))
    out = tmp_path / "res"
    assert _score("--task", TASK, "--predictions", str(zero), "--data-root", str(data_root),
                  "--results", str(out), "--model-name", "m") == 0
    (rec,) = store.load_records(out)
    assert rec["external"]["dataset_key"] == "RunnerShapes_A" and rec["external"]["num_predictions"] == 2

    few = tmp_path / "few.json.gz"
    few.write_bytes(gzip.compress(json.dumps({"runner-shapes-a": {"3": test, "30": test[:1]}}).encode()))
    assert _score("--task", TASK, "--predictions", str(few), "--data-root", str(data_root), "--results", str(out),
                  "--model-name", "m", "--regime", "full-ft", "--shots", "3") == 0
    few_recs = [r for r in store.load_records(out) if r["spec"]["regime"] == "full-ft"]
    by_seed = {r["spec"]["seed"]: r for r in few_recs}
    assert sorted(by_seed) == [3, 30]
    assert by_seed[3]["task"]["split"] == "test"  # a training regime is scored on the fine-tune split
    assert by_seed[3]["metrics"]["values"]["AP"] == pytest.approx(100.0)
    assert by_seed[30]["metrics"]["values"]["AP"] < 100.0


@pytest.mark.parametrize("make, args, match", [
    (lambda gt, preds: preds[:1] + [{**preds[1], "image_id": 999}], [], "names image_id 999"),
    (lambda gt, preds: [{**preds[0], "category_id": 7}], [], "names category_id 7"),
    (lambda gt, preds: [{"image_id": 1, "bbox": [0, 0, 1, 1]}], [], "prediction #0 is not"),
    (lambda gt, preds: {"pets": preds}, [], "has no entry for task runner-shapes-a"),
    (lambda gt, preds: {"runner-shapes-a": {"3": preds}}, [], "holds few-shot seeds"),
    (lambda gt, preds: {"runner-shapes-a": {"3": preds}}, ["--regime", "full-ft", "--shots", "3", "--seed", "4"],
     "unknown seed of entry 'runner-shapes-a'"),
    (lambda gt, preds: "boxes", [], "holds a JSON str"),
    (lambda gt, preds: preds, ["--regime", "full-ft", "--shots", "3"], "pass --seed S"),
    (lambda gt, preds: preds, ["--split", "tset"], "Did you mean 'test'?"),
    (lambda gt, preds: preds, ["--cost", "params=5"], "unknown --cost field 'params'"),
    (lambda gt, preds: preds, ["--seed", "3"], "zero-shot predictions take no --seed"),
    (lambda gt, preds: preds, ["--shots", "3"], "zero-shot predictions take no --shots"),
    (lambda gt, preds: preds, ["--model-name", "a/b"], "give a plain name"),
    (lambda gt, preds: preds, ["--cost", "total_params=many"], "--cost total_params takes a number"),
])
def test_bad_predictions_are_refused_by_file_and_entry(one_run, tmp_path, capsys, make, args, match):
    data_root, _, _, _ = one_run
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(make(_gt(data_root), _perfect(data_root))))
    out = tmp_path / "res"
    assert _score("--task", TASK, "--predictions", str(path), "--data-root", str(data_root),
                  "--results", str(out), *args) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (out / external.FOLDER).exists()  # nothing half-written


def test_missing_or_broken_predictions_file(one_run, tmp_path, capsys):
    data_root, _, _, _ = one_run
    assert _score("--task", TASK, "--predictions", str(tmp_path / "nope.json"), "--data-root", str(data_root)) == 2
    assert f"predictions file not found: {tmp_path / 'nope.json'}" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": 1,')
    assert _score("--task", TASK, "--predictions", str(broken), "--data-root", str(data_root)) == 2
    assert f"predictions file {broken} is not JSON" in capsys.readouterr().err


def test_leaderboard_shows_external_rows_beside_reproduced_and_reported(one_run, tmp_path):
    data_root, results, _, record = one_run
    results = _copy_of(results, tmp_path)
    path = tmp_path / "gdino.json"
    path.write_text(json.dumps(_perfect(data_root)))
    assert _score("--task", TASK, "--predictions", str(path), "--model-name", "grounding-dino-t",
                  "--data-root", str(data_root), "--results", str(results),
                  "--cost", "total_params=172000000", "--cost", "infer_images_per_s=9.5") == 0
    reference = tmp_path / "ref.csv"
    reference.write_text("model,pretrain_data,task,split,regime,shots,metric,value,std,source,note\n"
                         "GLIP-T,O365,coco_det,val2017,zero-shot,0,AP,46.6,,paper,\n")
    from bench.reports.reference import load_reference

    table = lb.leaderboard_table(load_record_frame(results), load_reference([reference]))
    kinds = dict(zip(table["model"], table["kind"]))
    assert kinds == {"glip-tiny": "run here", "grounding-dino-t": "external", "GLIP-T": "reported"}
    ext = table[table["model"] == "grounding-dino-t"].iloc[0]
    ours = table[table["model"] == "glip-tiny"].iloc[0]
    assert ext[f"{TASK} (AP)"] == "100.0"
    assert ours[f"{TASK} (AP)"] == f"{record['metrics']['values']['AP']:.1f}"
    # the same cost columns: blank where the external model did not declare them, its own where it did
    assert ext["trainable params"] == lb.MISSING and ext["train time / run"] == lb.MISSING
    assert ext["device"] == lb.MISSING and ext["images/s"] == "9.5"
    assert ext["params"] == "172.00M" and ext["stored params / task"] == lb.MISSING
    assert ours["trainable params"] != lb.MISSING and ours["device"].startswith("cpu")
    md = lb.render_markdown(table, 2)
    assert "| external | grounding-dino-t |" in md and "| run here | glip-tiny |" in md

    # through the CLI too: one table from the records of both kinds
    assert cli_main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb"),
                     "--reference", str(reference)]) == 0
    csv = (tmp_path / "lb" / "leaderboard.csv").read_text()
    assert "external,grounding-dino-t" in csv and "run here,glip-tiny" in csv


def test_bare_pair_prints_metrics_and_writes_nothing(tmp_path, capsys):
    from bench.metrics import evaluate
    from bench.testing.metrics import make_detection_fixture

    gt, dets = make_detection_fixture(n_images=30, seed=1)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dets))
    want = evaluate("coco_bbox", gt, dets)
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "coco", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["primary"] == "AP" and out["values"]["AP"] == pytest.approx(want.values["AP"])
    assert out["values"]["AP50"] == pytest.approx(want.values["AP50"]) and 0 < out["values"]["AP"] < 100
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "coco") == 0
    assert re.search(rf"^AP +{want.values['AP']:.2f}$", capsys.readouterr().out, re.M)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dt.json", "gt.json"]
    assert _score("--annotations", str(tmp_path / "no-gt.json"), "--predictions", str(dt_path), "--metric",
                  "coco") == 2
    assert f"annotations file not found: {tmp_path / 'no-gt.json'}" in capsys.readouterr().err

    # a challenge object needs the entry named; a bad entry is named with the file
    dt_path.write_text(json.dumps({"a": dets, "b": [{**dets[0], "image_id": -5}]}))
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "coco") == 2
    assert "pass --dataset KEY" in capsys.readouterr().err
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "coco",
                  "--dataset", "b") == 2
    err = capsys.readouterr().err
    assert f"{dt_path}, entry 'b'" in err and "names image_id -5" in err
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "coco",
                  "--dataset", "a", "--json") == 0
    assert json.loads(capsys.readouterr().out)["values"]["AP"] == pytest.approx(want.values["AP"])


def test_bare_pair_lvis_and_fixed_ap(tmp_path, capsys):
    from bench.metrics import evaluate
    from bench.testing.metrics import make_lvis_fixture

    gt, dets = make_lvis_fixture()
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dets))
    for name, metric in (("lvis", "lvis_bbox"), ("lvis-fixed", "lvis_fixed_ap")):
        assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", name, "--json") == 0
        out = json.loads(capsys.readouterr().out)
        assert out["metric"] == metric
        assert out["values"]["AP"] == pytest.approx(evaluate(metric, gt, dets).values["AP"])


@pytest.mark.parametrize("argv, match", [
    (["--task", TASK], "pass --predictions FILE"),
    (["--predictions", "x.json"], "exactly one of --task T"),
    (["--annotations", "gt.json", "--predictions", "x.json"], "needs --metric"),
    (["--annotations", "gt.json", "--predictions", "x.json", "--metric", "coco", "--results", "r"],
     "writes no record"),
    (["--run", "r", "--predictions", "x.json", "--task", TASK], "does not combine"),
    (["--run", "r", "--shots", "3"], "--shots goes with --predictions"),
    ([], "pass one of --run DIR or --results DIR"),
    (["--results", "r", "--json"], "--json goes with --predictions"),
])
def test_mode_errors(argv, match, capsys):
    assert _score(*argv) == 2
    assert match in capsys.readouterr().err


def test_bare_pair_flickr_recall(tmp_path, capsys):
    from bench.metrics import evaluate
    from bench.testing.metrics import make_flickr_fixture

    entries, preds = make_flickr_fixture(n_entries=40, seed=2)
    gt_path, dt_path = tmp_path / "flickr_recall_gt_val.json", tmp_path / "grounding.json"
    gt_path.write_text(json.dumps(entries))
    dt_path.write_text(json.dumps(preds))
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "flickr", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    want = evaluate("flickr_recall", entries, preds)
    assert out["primary"] == "R@1" and out["values"]["R@5"] == pytest.approx(want.values["R@5"])
    assert 0 < out["values"]["R@1"] < out["values"]["R@10"]


def test_bare_pair_extra_metrics(tmp_path, capsys):
    """`score --annotations GT --predictions DT --metric nms-ap --json` prints NMS-AP; several names, a list."""
    from bench.metrics import f1, nms_ap
    from bench.testing.metrics import make_detection_fixture

    gt, dets = make_detection_fixture(n_images=30, seed=1)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dets))
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "nms-ap", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    want = nms_ap.compute(gt, dets, backend="hotcoco")
    assert out["metric"] == "nms-ap" and out["values"]["AP"] == pytest.approx(want.values["AP"])
    assert out["definition"].startswith("NMS-AP") and out["backend"] == "hotcoco"
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "coco,f1", "--json") == 0
    both = json.loads(capsys.readouterr().out)
    assert [o["metric"] for o in both] == ["coco_bbox", "f1"] and "F1_50" in both[1]["values"]
    pair = ("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "f1", "--json")
    assert _score(*pair, "--f1-threshold", "0.3") == 0  # f1 at an operating point the user chose
    at = json.loads(capsys.readouterr().out)
    assert at["options"] == {"score_threshold": 0.3}
    assert at["values"] == pytest.approx(f1.compute(gt, dets, score_threshold=0.3).values, nan_ok=True)
    assert at["values"]["F1_50"] != both[1]["values"]["F1_50"]  # the default 0.5 gives another operating point
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "tide") == 0
    assert re.search(r"^dAP_Cls +\d+\.\d\d$", capsys.readouterr().out, re.M)
    assert _score("--annotations", str(gt_path), "--predictions", str(dt_path), "--metric", "nms") == 2
    assert "nms-ap" in capsys.readouterr().err
