"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and a forbidden import breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.is_file():
        pytest.skip("import-linter is not installed (it is in the dev extras)")
    # the checked tree's folder first on the path: the installed copy of the project must not be read
    return subprocess.run([str(exe), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_the_import_contracts_hold():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_a_core_module_importing_a_study_breaks_a_contract(tmp_path):
    for name in ("glip", "bench"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "bench" / "metrics" / "aggregate.py").open("a") as f:
        f.write("\nfrom bench.studies import demo  # noqa\n")
    out = _lint_imports(tmp_path)
    assert out.returncode != 0
    assert "the core never imports the studies, the commands or the CLI BROKEN" in out.stdout
    assert "bench.metrics.aggregate -> bench.studies" in out.stdout
