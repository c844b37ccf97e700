"""The noxfile's environment logic: which torch build a session installs, and the lock it installs from."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: nox brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import noxfile  # noqa: E402  (nox is a dev dependency)


@pytest.mark.parametrize(("platform", "gpu", "expected"), [
    ("linux", False, "cpu"), ("linux", True, "pypi"), ("darwin", False, "pypi"), ("win32", False, "pypi"),
])
def test_default_torch_is_the_cpu_build_on_linux_without_a_gpu(platform, gpu, expected):
    assert noxfile.default_torch(platform, has_nvidia_smi=gpu) == expected


def test_cpu_choice_asks_for_the_cpu_label_from_the_cpu_index():
    args = noxfile.torch_install_args("cpu")
    assert "torch==2.13.0+cpu" in args
    assert args[args.index("--extra-index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert "--extra-index-url" not in noxfile.torch_install_args("cpu", index="")  # a local wheel instead
    assert noxfile.torch_install_args("cpu", index="file:///mirror")[-1] == "file:///mirror"


def test_other_choices_pypi_none_and_verbatim_pip_arguments():
    assert noxfile.torch_install_args("pypi") == ["torch==2.13.0"]
    assert noxfile.torch_install_args("none") == []
    byo = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
    assert noxfile.torch_install_args(byo) == byo.split()


def test_torch_version_is_the_constraints_pin():
    pin = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    assert noxfile.TORCH_VERSION == pin


def test_lock_paths_are_per_python_version():
    assert noxfile.lock_path((3, 10, 13)) == Path("locks/py3.10.txt")
    assert noxfile.lock_path((3, 11, 7)) == Path("locks/py3.11.txt")


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[req.name.lower().replace("_", "-")] = spec.version
    return pins


@pytest.mark.parametrize("lock", sorted((ROOT / "locks").glob("py*.txt")), ids=lambda p: p.name)
def test_each_lock_pins_every_dependency_exactly_within_pyproject_ranges(lock):
    pins = _pins(lock)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    for req in wanted:
        name = req.name.lower().replace("_", "-")
        if name == "torch":
            assert name not in pins  # installed by GLIP_BENCH_TORCH, not the lock
            continue
        assert name in pins, f"{lock.name} lacks {name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{lock.name}: {name}=={pins[name]} outside {req}"
    assert not re.search(r"file://|--find-links|--index-url|^-e ", lock.read_text(), re.M)  # nothing of one machine


def test_the_lock_of_the_committed_numbers_exists():
    # results/ records say python 3.11: that environment must be reproducible from the repository
    assert (ROOT / "locks" / "py3.11.txt").is_file()


def test_a_failed_torch_install_names_glip_bench_torch_and_its_choices():
    """pip's own "conflicting dependencies" says nothing of the variable that picks the build; the session does."""
    import nox

    class FakeSession:
        def run(self, *args, **kwargs):
            raise nox.command.CommandFailed("pip exited 1")

        def error(self, message):
            raise RuntimeError(message)

    with pytest.raises(RuntimeError) as err:
        noxfile._install_torch(FakeSession(), "cpu", ["pip", "install", "torch==2.13.0+cpu"])
    message = str(err.value)
    assert "GLIP_BENCH_TORCH='cpu'" in message
    assert all(choice in message for choice in ("'cpu'", "'pypi'", "'none'", "GLIP_BENCH_TORCH_INDEX"))
