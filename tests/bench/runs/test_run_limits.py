"""Shots a split cannot give and negative seeds are refused before any compute, naming the limit."""

from __future__ import annotations

import json

import pytest

from bench.cli import main as cli_main
from bench.tasks.fewshot import most_shots
from bench.testing.world import make_world


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


def _run(data_root, tmp_path, *extra):
    return cli_main(["run", "--model", "glip-tiny", "--tasks", "runner-shapes-a", "--regime", "full-ft",
                     "--data-root", str(data_root), "--results", str(tmp_path / "results"), "--dry-run", *extra])


def test_shots_above_what_the_split_gives_are_refused_naming_the_most(world, tmp_path, capsys):
    _, data_root = world
    coco = json.loads((data_root / "runner" / "runner-shapes-a" / "train" / "ann.json").read_text())
    most, name = most_shots(coco)
    per_class = {c["name"]: len({a["image_id"] for a in coco["annotations"] if a["category_id"] == c["id"]})
                 for c in coco["categories"]}
    assert most == max(per_class.values()) and per_class[name] == most and most < len(coco["images"])
    assert _run(data_root, tmp_path, "--shots", "100000", "--seeds", "3") == 2
    err = capsys.readouterr().err
    assert "--shots 100000" in err and f"at most {most} shots" in err and "Traceback" not in err
    assert _run(data_root, tmp_path, "--shots", str(most), "--seeds", "3") == 0
    assert _run(data_root, tmp_path, "--shots", str(most + 1), "--seeds", "3") == 2


def test_a_negative_seed_is_refused(world, tmp_path, capsys):
    assert _run(world[1], tmp_path, "--shots", "1", "--seeds", "-1") == 2
    assert "seed -1 is out of range: seeds are integers from 0" in capsys.readouterr().err
