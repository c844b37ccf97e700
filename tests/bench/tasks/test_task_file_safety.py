"""Task files are data: a YAML tag that would run code is refused by name, and no path leaves the data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.tasks.registry import TaskRegistry
from bench.tasks.task_file import read_task_yaml
from bench.testing.formats import GOOD_TASK_YAML as GOOD
from bench.util.errors import UserError


def _write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system"])
def test_a_python_tag_is_refused_by_name_and_runs_nothing(tmp_path, capsys, monkeypatch, tag):
    monkeypatch.setenv("GLIP_BENCH_TASKS", "")  # --tasks-dir sets it; monkeypatch restores it after
    marker = tmp_path / "MARKER"
    text = GOOD.replace("description: a toy task", f'description: {tag} ["touch {marker}"]')
    p = _write(tmp_path / "tasks", "toy.yaml", text)
    rc = main(["--tasks-dir", str(tmp_path / "tasks"), "tasks"])
    err = capsys.readouterr().err
    assert rc == 2 and not marker.exists()
    assert str(p) in err and "python/object" in err and "no !!python" in err, err


def test_a_tag_in_a_base_file_is_refused_too(tmp_path):
    marker = tmp_path / "MARKER"
    base = _write(tmp_path, "_base.yaml", f'metric: !!python/object/apply:os.system ["touch {marker}"]\n')
    _write(tmp_path, "toy.yaml", "_base_: ./_base.yaml\n" + GOOD.replace("metric: coco_bbox\n", ""))
    with pytest.raises(UserError, match=str(base)):
        TaskRegistry(tmp_path)
    assert not marker.exists()


def test_base_merge_follows_mmengine(tmp_path):
    """Mappings merge key by key, `_delete_` replaces, lists and scalars replace, bases form no cycle."""
    _write(tmp_path, "_a.yaml", "x: {p: 1, q: 2}\ny: [1, 2]\nz: {r: 1}\n")
    p = _write(tmp_path, "c.yaml", "_base_: ./_a.yaml\nx: {q: 3}\ny: [5]\nz: {_delete_: true, s: 2}\n")
    assert read_task_yaml(p) == {"x": {"p": 1, "q": 3}, "y": [5], "z": {"s": 2}}
    _write(tmp_path, "_b.yaml", "_base_: ./_c.yaml\n")
    _write(tmp_path, "_c.yaml", "_base_: ./_b.yaml\n")
    with pytest.raises(UserError, match="cycle"):
        read_task_yaml(tmp_path / "_b.yaml")
    _write(tmp_path, "_d.yaml", "y: [0]\n")
    both = _write(tmp_path, "e.yaml", "_base_: [./_a.yaml, ./_d.yaml]\n")
    with pytest.raises(UserError, match=r"keys \['y'\] are given by more than one base"):
        read_task_yaml(both)
    with pytest.raises(UserError, match="not found"):
        read_task_yaml(_write(tmp_path, "f.yaml", "_base_: ./_missing.yaml\n"))


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("root: toy", "root: ../../..", "root"),
        ("root: toy", "root: /etc", "root"),
        ("{ann: val.json, images: val}", "{ann: /etc/passwd, images: val}", "splits.val.ann"),
        ("{ann: val.json, images: val}", "{ann: val.json, images: ../../x}", "splits.val.images"),
        ("metric: coco_bbox", "metric: coco_bbox\nfewshot: {val: '../f{shots}_{seed}.json'}", "fewshot.val"),
    ],
)
def test_paths_that_leave_the_data_root_are_refused(tmp_path, old, new, key):
    p = _write(tmp_path, "toy.yaml", GOOD.replace(old, new))
    with pytest.raises(UserError) as e:
        TaskRegistry(tmp_path)
    assert str(p) in str(e.value) and f"key {key!r}" in str(e.value) and "inside" in str(e.value)
