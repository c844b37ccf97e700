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


def test_group_odinw35_shows_which_are_defined(capsys):
    assert main(["tasks", "--group", "odinw35"]) == 0
    out = capsys.readouterr().out
    assert "odinw-boggle-boards" in out and "not defined" in out and "13 of 35 defined" in out


def test_unknown_group_is_a_user_error(capsys):
    assert main(["tasks", "--group", "odinw-13"]) == 2
