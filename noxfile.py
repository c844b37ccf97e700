"""nox sessions: the one entry point for tests, lint, benchmarks, the demo and the sweeps.

Environment: every session but lint and lock runs in ONE shared virtualenv per Python version
(.nox/shared-py3.X), installed from the lock file locks/py3.X.txt (exact versions of everything but
torch; refresh it with `nox -s lock`), then torch 2.13.0 as GLIP_BENCH_TORCH says:

    cpu    the CPU build from the PyTorch CPU index (GLIP_BENCH_TORCH_INDEX); the default on Linux without
           nvidia-smi, so nothing pulls several GB of CUDA packages
    pypi   PyPI's build (CUDA on Linux; the only build on macOS and Windows); the default with nvidia-smi
    none   bring your own: the shared venv sees the site-packages of the interpreter nox runs under
    other  passed to pip as they are, e.g. "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"

The venv is rebuilt when the lock, pyproject.toml or the torch choice changes (a stamp file records them).
Sessions that make committed numbers (demo, bench, the sweeps) refuse to run without a lock for their Python;
tests then install from pyproject.toml's ranges.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

TORCH_VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LOCK_PLATFORM = "x86_64-manylinux_2_28"  # the locks are for Linux x86_64 (the project's machines and CI)
CONSTRAINTS = ("-c", "constraints.txt")


def python_tag(version_info: tuple[int, ...] = tuple(sys.version_info)) -> str:
    return f"py{version_info[0]}.{version_info[1]}"


def lock_path(version_info: tuple[int, ...] = tuple(sys.version_info)) -> Path:
    return Path("locks") / f"{python_tag(version_info)}.txt"


def default_torch(platform: str = sys.platform, has_nvidia_smi: bool | None = None) -> str:
    """cpu on Linux without a GPU, PyPI's build elsewhere (there it is the CUDA or the only build)."""
    if has_nvidia_smi is None:
        has_nvidia_smi = shutil.which("nvidia-smi") is not None
    return "cpu" if platform.startswith("linux") and not has_nvidia_smi else "pypi"


def torch_install_args(choice: str | None = None, index: str | None = None) -> list[str]:
    """pip arguments that install torch for a GLIP_BENCH_TORCH choice ([] for none: bring your own).

    cpu asks for the local version label +cpu, so PyPI's CUDA build can never satisfy it: without the CPU
    index (or a local CPU wheel) the install fails instead of pulling CUDA. --no-deps: torch's own
    dependencies come from the lock.
    """
    choice = (choice or "").strip() or default_torch()
    if choice == "cpu":
        index = CPU_INDEX if index is None else index
        return ["--no-deps", f"torch=={TORCH_VERSION}+cpu", *(["--extra-index-url", index] if index else [])]
    if choice == "pypi":
        return [f"torch=={TORCH_VERSION}"]  # its CUDA libraries are not in the lock: pip resolves them
    if choice == "none":
        return []
    return shlex.split(choice)


def _torch_choice() -> tuple[str, list[str]]:
    choice = os.environ.get("GLIP_BENCH_TORCH", "").strip() or default_torch()
    return choice, torch_install_args(choice, os.environ.get("GLIP_BENCH_TORCH_INDEX"))


def _install_torch(session: nox.Session, choice: str, command: list[str]) -> None:
    """pip install torch as GLIP_BENCH_TORCH says; a failure names the variable and its choices."""
    try:
        session.run(*command, external=True)
    except nox.command.CommandFailed:
        session.error(
            f"installing torch {TORCH_VERSION} failed (GLIP_BENCH_TORCH={choice!r}; pip's message is above). Choose "
            "another build with GLIP_BENCH_TORCH: 'cpu' (the CPU build from GLIP_BENCH_TORCH_INDEX, default the "
            "PyTorch CPU index; set it empty to use only pip's own configuration), 'pypi' (PyPI's build: CUDA on "
            "Linux), 'none' (bring your own torch: the venv sees this interpreter's packages), or pip arguments such "
            f"as 'torch=={TORCH_VERSION} --index-url https://download.pytorch.org/whl/cu126'. The committed numbers "
            f"are made on Python 3.11 (locks/): other Pythons may have no torch {TORCH_VERSION} build on your index.")


def _stamp(lock: Path | None, torch_args: list[str], choice: str) -> str:
    h = hashlib.sha256()
    for p in (lock, Path("pyproject.toml"), Path("constraints.txt")):
        h.update(p.read_bytes() if p is not None and p.is_file() else b"-")
    h.update(shlex.join([choice, *torch_args]).encode())
    return h.hexdigest()


def shared_env(session: nox.Session, need_lock: bool) -> Path:
    """Create or update the shared venv for this Python; returns its bin folder (also put first on PATH)."""
    lock = lock_path()
    if not lock.is_file():
        if need_lock:
            session.error(f"no lock file for Python {sys.version_info[0]}.{sys.version_info[1]} ({lock}): the "
                          f"numbers of this session are only comparable under a lock; make one with `nox -s lock`")
        lock = None
    choice, torch_args = _torch_choice()
    root = Path(".nox") / f"shared-{python_tag()}"
    bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
    python = str(bin_dir / "python")
    stamp_file, stamp = root / "glip-bench-stamp", _stamp(lock, torch_args, choice)
    if not (stamp_file.is_file() and stamp_file.read_text() == stamp):
        if root.exists():
            shutil.rmtree(root)
        session.run(sys.executable, "-m", "venv", *(["--system-site-packages"] if choice == "none" else []),
                    str(root), external=True)
        pip = (python, "-m", "pip", "install", "--disable-pip-version-check")
        if lock is not None:
            session.run(*pip, "-r", str(lock), *CONSTRAINTS, external=True)
            if torch_args:
                _install_torch(session, choice, [*pip, *CONSTRAINTS, "-c", str(lock), *torch_args])
            session.run(*pip, "--no-deps", "-e", ".", external=True)
            session.run(python, "-m", "pip", "check", external=True)
        else:
            if torch_args:
                _install_torch(session, choice, [*pip, *CONSTRAINTS, *[a for a in torch_args if a != "--no-deps"]])
            session.run(*pip, *CONSTRAINTS, "-e", ".[dev]", external=True)
        stamp_file.write_text(stamp)
    session.env["VIRTUAL_ENV"] = str(root.resolve())
    session.env["PATH"] = os.pathsep.join([str(bin_dir.resolve()), os.environ.get("PATH", "")])
    session.env.setdefault("HF_HUB_OFFLINE", "1")
    session.env.setdefault("TRANSFORMERS_OFFLINE", "1")
    session.env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return bin_dir.resolve()


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The whole test suite (pass pytest arguments after --)."""
    bin_dir = shared_env(session, need_lock=False)
    args = session.posargs or ["-n", "2", "--dist", "loadfile", "--durations", "15"]
    session.run(str(bin_dir / "python"), "-m", "pytest", *args, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the whole tree, then the import contracts of pyproject.toml (import-linter reads the
    source, so the project itself need not be installed)."""
    session.install(*CONSTRAINTS, "ruff", "import-linter")
    session.run("ruff", "check", "glip", "bench", "tests", "noxfile.py")
    session.run("lint-imports")


@nox.session
def lock(session: nox.Session) -> None:
    """Re-resolve locks/py3.X.txt from pyproject.toml (uv; versions already in the lock are kept unless
    `-- --upgrade` or `-- --upgrade-package NAME`). torch's CPU build comes from GLIP_BENCH_TORCH_INDEX."""
    session.install("uv")
    out = lock_path()
    out.parent.mkdir(exist_ok=True)
    index = os.environ.get("GLIP_BENCH_TORCH_INDEX", CPU_INDEX)
    session.run(
        "uv", "pip", "compile", "pyproject.toml", "--extra", "dev", *CONSTRAINTS,
        "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}", "--python-platform", LOCK_PLATFORM,
        "--no-emit-package", "torch", "--custom-compile-command", "nox -s lock",
        *(["--extra-index-url", index, "--index-strategy", "unsafe-best-match"] if index else []),
        "-o", str(out), *session.posargs,
    )


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Micro-benchmarks (pytest-benchmark); the JSON lands in results/benchmarks/."""
    bin_dir = shared_env(session, need_lock=True)
    session.env.setdefault("OMP_NUM_THREADS", "1")  # ratios are measured single-threaded (noisy shared cores)
    Path("results/benchmarks").mkdir(parents=True, exist_ok=True)
    session.run(
        str(bin_dir / "python"), "-m", "pytest", "benchmarks", "--benchmark-only",
        "--benchmark-json", "results/benchmarks/latest.json", *session.posargs, external=True,
    )
    session.run(str(bin_dir / "python"), "-m", "bench.reports.benchmarks", "results/benchmarks/latest.json",
                external=True)
    # scoring at COCO-val and LVIS size against the reference libraries, one process per backend (peak memory);
    # GLIP_BENCH_SMOKE=1 runs every benchmark once at tiny sizes instead (tests/benchmarks/test_bench_smoke.py)
    session.run(str(bin_dir / "python"), "benchmarks/scoring_scale.py", "--json",
                "results/benchmarks/scoring-scale.json", external=True)
    # a zero-shot Fixed-AP run's peak memory at 200 and 2,000 images, one process per size (docs/memory.md)
    session.run(str(bin_dir / "python"), "benchmarks/run_memory.py", "--json",
                "results/benchmarks/run-memory.json", external=True)


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """The main job: the built-in synthetic suite end to end into results/demo/ (args go to `glip-bench demo`)."""
    bin_dir = shared_env(session, need_lock=True)
    session.run(str(bin_dir / "glip-bench"), "demo", *session.posargs, external=True)


@nox.session(venv_backend="none")
def demo_check(session: nox.Session) -> None:
    """The reproduction check (bench.studies.reproduce): `glip-bench demo --quick` into build/demo-quick against
    the committed results/demo-quick, bit for bit where the kernel fingerprint is the committed one, else by the
    kernel-independent checks; fails when a number moved. `-- --update` makes a fresh quick demo (records and
    the models behind them) the committed reference instead."""
    bin_dir = shared_env(session, need_lock=True)
    session.run(str(bin_dir / "python"), "-m", "bench.studies.reproduce", *session.posargs, external=True)


@nox.session(venv_backend="none")
def claims(session: nox.Session) -> None:
    """The paper's claims over several pretraining seeds into results/claims/ (args go to `glip-bench claims`)."""
    bin_dir = shared_env(session, need_lock=True)
    session.run(str(bin_dir / "glip-bench"), "claims", *session.posargs, external=True)


def _cli(name: str, *fixed: str, doc: str) -> None:
    """Declare a session that forwards its arguments to a glip-bench subcommand."""

    def session_fn(session: nox.Session) -> None:
        bin_dir = shared_env(session, need_lock=True)
        session.run(str(bin_dir / "glip-bench"), *fixed, *session.posargs, external=True)

    session_fn.__doc__ = doc
    session_fn.__name__ = name
    nox.session(name=name, venv_backend="none")(session_fn)


_cli("zero_shot", "run", "--regime", "zero-shot", doc="glip-bench run --regime zero-shot ARGS")
_cli("few_shot", "run", "--regime", "full-ft", "--shots", "1,3,5,10", doc="few-shot full fine-tuning sweep: glip-bench run ARGS")
_cli("prompt_tuning", "run", "--regime", "prompt-tuning", doc="glip-bench run --regime prompt-tuning ARGS")
_cli("finetune", "run", "--regime", "full-ft", doc="glip-bench run --regime full-ft ARGS")
_cli("fusion_ablation", "ablation", "--a", "fusion=late", "--b", "fusion=deep", doc="glip-bench ablation ARGS")
_cli("leaderboard", "leaderboard", doc="glip-bench leaderboard ARGS")
