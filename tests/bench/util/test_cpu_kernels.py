"""The pinned CPU kernels: set where unset, never over a user's choice, and in effect in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.util.cpu_kernels import PINNED, pin_cpu_kernels


def test_pin_sets_unset_names_and_keeps_a_users_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PINNED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert pin_cpu_kernels() == {**PINNED, "ATEN_CPU_CAPABILITY": "default"}
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"


def test_a_fresh_process_runs_avx2_kernels_after_the_pin() -> None:
    env = {k: v for k, v in os.environ.items() if k not in PINNED}
    probe = "from bench.util.cpu_kernels import cpu_capability as c; print(c())"
    native = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    if native.stdout.strip() not in ("avx2", "avx512"):
        pytest.skip(f"torch picks {native.stdout.strip()!r} kernels here: AVX2 is not available to pin")
    pinned = "from bench.util.cpu_kernels import pin_cpu_kernels; pin_cpu_kernels(); " + probe
    out = subprocess.run([sys.executable, "-c", pinned], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "avx2", out.stderr
