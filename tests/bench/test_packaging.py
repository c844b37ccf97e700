"""The wheel holds glip, bench and the task YAMLs (as bench.task_files), nothing else; --tasks-dir picks a user's own."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def test_the_listed_packages_are_every_package_on_disk():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    code = find_packages(str(ROOT), include=["glip", "glip.*", "bench", "bench.*"])
    tasks = ["bench.task_files", *(f"bench.task_files.{d.name}" for d in (ROOT / "tasks").iterdir() if d.is_dir())]
    assert sorted(listed) == sorted(code + tasks)


def test_the_wheel_ships_the_tasks_and_no_other_top_level_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("glip_bench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("glip_bench-")} == {"glip", "bench"}
    shipped = {n.removeprefix("bench/task_files/") for n in names if n.startswith("bench/task_files/")}
    on_disk = {str(p.relative_to(ROOT / "tasks")) for p in (ROOT / "tasks").rglob("*.yaml")}
    assert on_disk and on_disk <= shipped


def test_tasks_dir_option_reads_a_users_own_tasks(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from bench.testing.formats import GOOD_TASK_YAML as GOOD

    monkeypatch.setenv("GLIP_BENCH_TASKS", "")  # recorded, so the value the CLI sets is undone after the test
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "toy.yaml").write_text(GOOD)
    assert main(["--tasks-dir", str(tmp_path / "mine"), "tasks"]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "synth-shapes" not in out
    assert main(["--tasks-dir", str(tmp_path / "none"), "tasks"]) == 2
    assert "pass --tasks-dir DIR or set GLIP_BENCH_TASKS" in capsys.readouterr().err
