"""nox sessions: the one entry point for tests, lint, benchmarks, the demo and the sweeps.

Every session installs with `-c constraints.txt`, so torch resolves to the pinned build (2.13.0,
the local CPU wheel on the project's machines) and nothing pulls a CUDA build. Sessions reuse
their virtualenv when it is already there.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

CONSTRAINTS = ("-c", "constraints.txt")
PYTHON = None  # the interpreter nox runs under


def _install(session: nox.Session, extras: str = "dev") -> None:
    """Install torch first (pinned), then the project in editable mode, all under the constraints."""
    session.env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    session.install(*CONSTRAINTS, "torch")
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")


def _env(session: nox.Session) -> None:
    session.env.setdefault("HF_HUB_OFFLINE", "1")
    session.env.setdefault("TRANSFORMERS_OFFLINE", "1")
    session.env.setdefault("TOKENIZERS_PARALLELISM", "false")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (pass pytest arguments after --)."""
    _install(session)
    _env(session)
    args = session.posargs or ["-n", "2", "--dist", "loadfile", "--durations", "15"]
    session.run("python", "-m", "pytest", *args)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the whole tree."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", "glip", "bench", "tests", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Micro-benchmarks (pytest-benchmark); the JSON lands in results/benchmarks/."""
    _install(session)
    _env(session)
    session.env.setdefault("OMP_NUM_THREADS", "1")  # ratios are measured single-threaded (noisy shared cores)
    Path("results/benchmarks").mkdir(parents=True, exist_ok=True)
    session.run(
        "python", "-m", "pytest", "benchmarks", "--benchmark-only",
        "--benchmark-json", "results/benchmarks/latest.json", *session.posargs,
    )
    session.run("python", "-m", "bench.benchmark_summary", "results/benchmarks/latest.json")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: the built-in synthetic suite end to end into results/demo/ (args go to `glip-bench demo`)."""
    _install(session)
    _env(session)
    session.run("glip-bench", "demo", *session.posargs)


def _cli(name: str, *fixed: str, doc: str) -> None:
    """Declare a session that forwards its arguments to a glip-bench subcommand."""

    def session_fn(session: nox.Session) -> None:
        _install(session)
        _env(session)
        session.run("glip-bench", *fixed, *session.posargs)

    session_fn.__doc__ = doc
    session_fn.__name__ = name
    nox.session(name=name, python=PYTHON)(session_fn)


_cli("zero_shot", "run", "--regime", "zero-shot", doc="glip-bench run --regime zero-shot ARGS")
_cli("few_shot", "run", "--regime", "full-ft", "--shots", "1,3,5,10", doc="few-shot full fine-tuning sweep: glip-bench run ARGS")
_cli("prompt_tuning", "run", "--regime", "prompt-tuning", doc="glip-bench run --regime prompt-tuning ARGS")
_cli("finetune", "run", "--regime", "full-ft", doc="glip-bench run --regime full-ft ARGS")
_cli("fusion_ablation", "ablation", "--a", "fusion=late", "--b", "fusion=deep", doc="glip-bench ablation ARGS")
_cli("leaderboard", "leaderboard", doc="glip-bench leaderboard ARGS")
