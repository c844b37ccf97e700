"""`glip-bench score`: metrics recomputed from the saved predictions alone, no inference."""

from __future__ import annotations

import json

import pytest

from bench.cli import main as cli_main
from bench.results import store
from bench.runs.runner import run_grid
from bench.runs.spec import RunContext, expand_grid
from bench.testing.world import make_world


@pytest.fixture
def one_run(tmp_path, monkeypatch):
    _, data_root = make_world(tmp_path, monkeypatch)
    specs = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["zero-shot"], shots=None, seeds=None,
                        overrides={"infer_batch_size": 4})
    (record,) = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results"))
    return data_root, tmp_path / "results", store.run_dir(tmp_path / "results", specs[0]), record


def test_score_recomputes_from_predictions(one_run, capsys):
    data_root, results, folder, record = one_run
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root)]) == 0
    assert "rescored 1 runs, 0 changed" in capsys.readouterr().out
    assert json.dumps(store.load_record(folder / "record.json")["metrics"]) == json.dumps(record["metrics"])

    # a tampered record is put right from the predictions
    tampered = store.load_record(folder / "record.json")
    tampered["metrics"]["values"]["AP"] = 55.0
    store.write_record(folder, tampered)
    assert cli_main(["score", "--results", str(results), "--data-root", str(data_root)]) == 0
    assert store.load_record(folder / "record.json")["metrics"]["values"]["AP"] == record["metrics"]["values"]["AP"]

    # perfect predictions (the ground truth itself) score 100 with either backend: the metric reads the file
    gt = json.loads((data_root / "runner" / "runner-shapes-a" / "val" / "ann.json").read_text())
    store.write_predictions(folder, [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                                      "score": 0.9} for a in gt["annotations"]])
    for backend in ("hotcoco", "pycocotools"):
        assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root),
                         "--metric-backend", backend]) == 0
        rec = store.load_record(folder / "record.json")
        assert rec["metrics"]["values"]["AP"] == pytest.approx(100.0)
        assert rec["provenance"]["metric_backend"] == backend and "rescored_at" in rec


def test_a_record_of_the_dropped_backend_is_refused_with_the_fix(one_run, capsys):
    """faster-coco-eval is no longer shipped: a record naming it says why and how to rescore it."""
    data_root, _, folder, record = one_run
    old = store.load_record(folder / "record.json")
    old["provenance"]["metric_backend"] = "faster"
    store.write_record(folder, old)
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert "faster-coco-eval was dropped" in err and "--metric-backend hotcoco" in err
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root), "--metric-backend", "hotcoco"]) == 0
    rescored = store.load_record(folder / "record.json")["metrics"]["values"]
    assert json.dumps(rescored) == json.dumps(record["metrics"]["values"])  # NaN-safe equality


def test_score_errors(one_run, tmp_path, capsys):
    data_root, results, folder, _ = one_run
    assert cli_main(["score", "--run", str(tmp_path), "--data-root", str(data_root)]) == 2
    assert "no record.json" in capsys.readouterr().err
    (folder / store.PREDICTIONS).unlink()
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root)]) == 2
    assert "no predictions" in capsys.readouterr().err


def _write_raw_predictions(folder, preds):
    """A predictions file as another tool might write it: the standard library's NaN / Infinity literals."""
    import gzip

    (folder / store.PREDICTIONS).write_bytes(gzip.compress(json.dumps(preds).encode()))


@pytest.mark.parametrize("bad, match", [
    ({"bbox": [1.0, 2.0, float("inf"), 5.0]}, "non-finite bbox coordinate"),
    ({"bbox": [float("nan"), 2.0, 4.0, 5.0]}, "non-finite bbox coordinate"),
    ({"bbox": [1.0, 2.0, -4.0, 5.0]}, "negative bbox width or height"),
    ({"score": "0.5"}, "score of type str, not a number"),
    ({"bbox": [1.0, "2", 4.0, 5.0]}, "bbox entry that is not a number"),
])
def test_score_refuses_bad_entries_by_run_and_entry(one_run, capsys, bad, match):
    data_root, _, folder, record = one_run
    gt = json.loads((data_root / "runner" / "runner-shapes-a" / "val" / "ann.json").read_text())
    preds = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
             for a in gt["annotations"]]
    preds[1] = {**preds[1], **bad}
    _write_raw_predictions(folder, preds)
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert f"run {folder.name}" in err and "prediction #1 " in err and match in err
    assert json.dumps(store.load_record(folder / "record.json")["metrics"]) == json.dumps(record["metrics"])


def test_score_names_a_truncated_predictions_file(one_run, capsys):
    data_root, _, folder, _ = one_run
    path = folder / store.PREDICTIONS
    path.write_bytes(path.read_bytes()[:-20])
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "truncated or corrupt" in err and "Traceback" not in err


def test_score_results_rescores_every_good_run_and_lists_the_bad(tmp_path, monkeypatch, capsys):
    _, data_root = make_world(tmp_path, monkeypatch)
    specs = expand_grid(models=["glip-tiny"], tasks="runner-world", regimes=["zero-shot"], shots=None, seeds=None,
                        overrides={"infer_batch_size": 4})
    results = tmp_path / "results"
    run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    bad, good = (store.run_dir(results, s) for s in sorted(specs, key=lambda s: s.run_name))
    _write_raw_predictions(bad, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}])
    tampered = store.load_record(good / "record.json")
    true_ap = tampered["metrics"]["values"]["AP"]
    tampered["metrics"]["values"]["AP"] = 55.0
    store.write_record(good, tampered)
    assert cli_main(["score", "--results", str(results), "--data-root", str(data_root)]) == 2
    captured = capsys.readouterr()
    assert "1 of 2 runs could not be rescored" in captured.err and bad.name in captured.err
    assert store.load_record(good / "record.json")["metrics"]["values"]["AP"] == true_ap


def test_score_adds_extra_metrics_without_inference(one_run, capsys, monkeypatch):
    """`score --run DIR --metric nms-ap,f1,tide` adds them to the record from the saved predictions alone."""
    from bench.metrics.extras import compute_extra
    from bench.models import cache

    data_root, results, folder, record = one_run
    monkeypatch.setattr(cache.ModelCache, "get", lambda *a, **k: pytest.fail("no model may be built"))
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root), "--metric", "nms-ap,f1,tide"]) == 0
    out = capsys.readouterr().out
    assert "added nms-ap, f1, tide to 1 runs" in out and f"{folder.name}: nms-ap: AP" in out
    assert (folder / "tide.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the run's TIDE chart
    rec = store.load_record(folder / "record.json")
    assert json.dumps(rec["metrics"]["values"]) == json.dumps(record["metrics"]["values"])  # left alone (NaN-safe)
    extra = rec["metrics"]["extra"]
    assert set(extra) == {"nms-ap", "f1", "tide"}
    gt = json.loads((data_root / "runner" / "runner-shapes-a" / "val" / "ann.json").read_text())
    preds = store.read_predictions(folder)
    for name in extra:
        assert json.dumps(extra[name]) == json.dumps(compute_extra(name, gt, preds, "hotcoco", base="coco_bbox"))
        assert extra[name]["definition"] and extra[name]["backend"] == "hotcoco"
    # a base metric name is not an extra metric here
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root), "--metric", "coco"]) == 2
    assert "task's metric" in capsys.readouterr().err
    assert cli_main(["score", "--run", str(folder), "--data-root", str(data_root), "--metric", "nmsap"]) == 2
    assert "nms-ap" in capsys.readouterr().err


def test_task_extra_metrics_are_recorded_by_a_run(tmp_path, monkeypatch):
    from bench.tasks.registry import load_registry
    from bench.util.errors import UserError

    tasks_dir, data_root = make_world(tmp_path, monkeypatch)
    path = tasks_dir / "runner-shapes-a.yaml"
    original = path.read_text()
    for bad, message in (("[nmsap]", "unknown"), ("nms-ap", "list of names"), ("[f1, f1]", "repeats")):
        path.write_text(original + f"extra_metrics: {bad}\n")
        with pytest.raises(UserError, match=f"extra_metrics.*{message}"):
            load_registry(tasks_dir, reload=True)
    path.write_text(original + "extra_metrics: [nms-ap, f1]\n")
    load_registry(tasks_dir, reload=True)
    specs = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["zero-shot"], shots=None, seeds=None,
                        overrides={"infer_batch_size": 4})
    (record,) = run_grid(specs, RunContext(data_root=data_root, results_dir=tmp_path / "results"))
    extra = record["metrics"]["extra"]
    assert list(extra) == ["nms-ap", "f1"] and extra["f1"]["primary"] == "F1_50"
    assert extra["nms-ap"]["backend"] == "hotcoco" and "OVDEval" in extra["nms-ap"]["definition"]


def test_f1_operating_point_chosen_on_another_split(one_run, capsys):
    """`--f1-threshold-from VAL` scores a test run's P/R/F1 at the best-F1 score of the same model on val."""
    from bench.metrics import f1
    from bench.tasks.registry import load_registry

    data_root, results, _, _ = one_run
    tasks_dir = data_root.parent / "tasks"
    (tasks_dir / "runner-shapes-a-test.yaml").write_text(  # the same task scored on test: data, one line changed
        "_base_: ./runner-shapes-a.yaml\nname: runner-shapes-a-test\neval_split: test\n")
    load_registry(reload=True)  # the shipped tasks and GLIP_BENCH_TASKS (make_world set it)
    # runner-shapes-a evaluates on val; every candidate box kept, so the random model has detections to rank
    specs = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a,runner-shapes-a-test", regimes=["zero-shot"],
                        shots=None, seeds=None, overrides={"infer_batch_size": 4, "pre_nms_thresh": 0.0})
    run_grid(specs, RunContext(data_root=data_root, results_dir=results))
    val_run, test_run = (store.run_dir(results, s) for s in specs)
    assert val_run.name.startswith("runner-shapes-a__") and test_run.name.startswith("runner-shapes-a-test__")

    def gt(split):
        return json.loads((data_root / "runner" / "runner-shapes-a" / split / "ann.json").read_text())

    chosen = f1.compute(gt("val"), store.read_predictions(val_run)).values["score_F1max50"]
    args = ["score", "--run", str(test_run), "--data-root", str(data_root), "--metric", "f1"]
    assert cli_main([*args, "--f1-threshold-from", str(val_run)]) == 0
    entry = store.load_record(test_run / "record.json")["metrics"]["extra"]["f1"]
    assert entry["options"] == {"score_threshold": chosen}
    assert entry["threshold_from"]["run"] == val_run.name and entry["threshold_from"]["split"] == "val"
    expected = f1.compute(gt("test"), store.read_predictions(test_run), score_threshold=chosen).values
    assert json.dumps(entry["values"]) == json.dumps(expected)

    assert cli_main([*args, "--f1-threshold", "0.2"]) == 0  # a threshold the user chose
    entry = store.load_record(test_run / "record.json")["metrics"]["extra"]["f1"]
    assert entry["options"] == {"score_threshold": 0.2} and entry["threshold_from"] == {"given": 0.2}

    capsys.readouterr()
    refused = {  # each names what to fix
        "same annotations": [*args, "--f1-threshold-from", str(test_run)],
        "between 0 and 1": [*args, "--f1-threshold", "1.5"],
        "add --metric f1": ["score", "--run", str(test_run), "--data-root", str(data_root), "--metric", "nms-ap",
                            "--f1-threshold", "0.3"],
        "pass it with --run": ["score", "--results", str(results), "--data-root", str(data_root), "--metric", "f1",
                               "--f1-threshold-from", str(val_run)],
    }
    for message, argv in refused.items():
        assert cli_main(argv) == 2, message
        assert message in capsys.readouterr().err
    # a run of another model setting (its batch size) on val may not set the threshold
    other = expand_grid(models=["glip-tiny"], tasks="runner-shapes-a", regimes=["zero-shot"], shots=None,
                        seeds=None, overrides={"infer_batch_size": 2, "pre_nms_thresh": 0.0})
    run_grid(other, RunContext(data_root=data_root, results_dir=results))
    assert cli_main([*args, "--f1-threshold-from", str(store.run_dir(results, other[0]))]) == 2
    assert "differs from the scored run's in overrides" in capsys.readouterr().err
