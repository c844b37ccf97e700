"""`glip-bench tasks`: table, --json, --group, --data-root."""

from __future__ import annotations

import json

from bench.cli import main
from bench.tasks.registry import load_registry
from bench.testing.formats import ODINW13, make_detection_task_data


def _json(capsys, *argv):
    assert main(["tasks", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_group_odinw13_lists_exactly_the_13(capsys):
    rows = _json(capsys, "--group", "odinw13")
    assert sorted(r["name"] for r in rows) == sorted(ODINW13)
    assert all(r["defined"] and r["metric"] == "coco_bbox" for r in rows)
    by = {r["name"]: r for r in rows}
    assert by["odinw-egohands-generic"]["split"] == "minival" and by["odinw-pascal-voc"]["classes"] == 20


def test_table_columns_and_from_file(capsys, tmp_path):
    assert main(["tasks", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:2] == ["task", "split"] and "#classes" in header and "version" in header and "data" in header
    coco = next(line for line in out.splitlines() if line.startswith("coco "))
    assert "from file" in coco and "coco_bbox" in coco and coco.rstrip().endswith("no")
    lvis = next(line for line in out.splitlines() if line.startswith("lvis-minival "))
    assert "lvis_fixed_ap" in lvis


def test_data_presence_follows_the_data_root(capsys, tmp_path):
    task = load_registry().get("odinw-raccoon")
    before = {r["name"]: r for r in _json(capsys, "--data-root", str(tmp_path))}
    assert before["odinw-raccoon"]["data"] == "no"
    make_detection_task_data(task, tmp_path)
    after = {r["name"]: r for r in _json(capsys, "--data-root", str(tmp_path))}
    assert after["odinw-raccoon"]["data"] == "yes" and after["odinw-aquarium"]["data"] == "no"
    (task.ann_path("test", tmp_path)).unlink()
    partial = {r["name"]: r for r in _json(capsys, "--data-root", str(tmp_path))}
    assert partial["odinw-raccoon"]["data"] == "partial: train,val"


def test_group_odinw35_lists_its_35_tasks(capsys):
    assert main(["tasks", "--group", "odinw35"]) == 0
    out = capsys.readouterr().out
    assert "odinw-boggle-boards" in out and "not defined" not in out and "group odinw35: 35 tasks" in out


def test_a_group_member_without_a_yaml_is_shown_as_not_defined(tmp_path, monkeypatch, capsys):
    (tmp_path / "_groups.yaml").write_text("groups:\n  mine:\n    members: [toy-missing]\n")
    monkeypatch.setenv("GLIP_BENCH_TASKS", str(tmp_path))
    load_registry(tmp_path, reload=True)
    assert main(["tasks", "--group", "mine"]) == 0
    out = capsys.readouterr().out
    assert "toy-missing" in out and "not defined" in out and "0 of 1 defined" in out


def test_tasks_shows_the_ov_splits_and_rec_tasks_with_data_presence_and_sources(capsys):
    rows = {r["name"]: r for r in _json(capsys)}
    assert rows["ov-coco"]["classes_label"] == "base 48 / novel 17"
    assert rows["ov-lvis-minival"]["classes_label"] == "base f+c / novel r"
    assert rows["refcoco-val"]["classes_label"] == "per expression" and rows["refcoco-val"]["metric"] == "rec_accuracy"
    assert all(r["data"] == "no" for n, r in rows.items() if n.startswith(("ov-", "refcoco", "grefcoco")))
    assert main(["tasks", "--data-root", "/nonexistent", "--sources"]) == 0
    out = capsys.readouterr().out
    assert "where to get the missing data:" in out
    assert "refcoco-val: MDETR annotations (https://zenodo.org/record/4729015" in out


def test_unknown_group_is_a_user_error(capsys):
    assert main(["tasks", "--group", "odinw-13"]) == 2
