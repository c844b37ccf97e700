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
    assert sorted(listed) == sorted(code + tasks + ["bench.reference_numbers"])


def _tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files (as .ci/wheel-check builds from): no build/ left by an earlier build."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes((ROOT / name).read_bytes())
    return dest


def _wheel_names(src: Path, out: Path) -> list[str]:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, cwd=out)
    (wheel,) = out.glob("glip_bench-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_the_wheel_ships_the_tasks_the_reference_numbers_and_no_other_top_level_package(tmp_path):
    src = _tracked_copy(tmp_path / "src")
    (tmp_path / "a").mkdir()
    names = _wheel_names(src, tmp_path / "a")
    assert {n.split("/")[0] for n in names if not n.startswith("glip_bench-")} == {"glip", "bench"}
    shipped = {n.removeprefix("bench/task_files/") for n in names if n.startswith("bench/task_files/")}
    on_disk = {str(p.relative_to(ROOT / "tasks")) for p in (ROOT / "tasks").rglob("*.yaml")}
    assert on_disk and on_disk <= shipped
    assert "bench/reference_numbers/reported-numbers.csv" in names
    # a task deleted from the sources is gone from the next wheel built in the same folder (setup.py empties
    # build/lib: setuptools alone would ship the earlier build's copy)
    assert "bench/task_files/synthetic/shapes.yaml" in names and (src / "build").is_dir()
    (src / "tasks" / "synthetic" / "shapes.yaml").unlink()
    (tmp_path / "b").mkdir()
    assert "bench/task_files/synthetic/shapes.yaml" not in _wheel_names(src, tmp_path / "b")


def test_tasks_dir_option_reads_a_users_own_tasks(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from bench.testing.formats import GOOD_TASK_YAML as GOOD

    monkeypatch.setenv("GLIP_BENCH_TASKS", "")  # recorded, so the value the CLI sets is undone after the test
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "toy.yaml").write_text(GOOD)
    assert main(["--tasks-dir", str(tmp_path / "mine"), "tasks"]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "synth-shapes" in out  # added to the shipped tasks
    assert main(["--tasks-dir", str(tmp_path / "none"), "tasks"]) == 2
    assert "pass --tasks-dir DIR or set GLIP_BENCH_TASKS" in capsys.readouterr().err
