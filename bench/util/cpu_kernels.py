"""One CPU kernel set for the studies whose numbers are committed (demo, claims), so that they reproduce
on x86-64 machines with AVX2 or more, not only on one like the machine that made them (checked on one
AVX-512 machine against records made with AVX2 kernels; a CPU without AVX2 is not covered).

torch, oneDNN and MKL each pick their vector kernels by what the CPU offers, and a different pick changes
float results, which pretraining from scratch amplifies: on an AVX-512 machine every one of the quick
demo's 24 records moved against the committed ones (made where AVX2 was picked); with the settings below
in the environment all 24 were identical, bit for bit. They act only if set before torch runs its first
kernel, so commands set them before importing torch; worker processes inherit them. A value already in
the environment wins (e.g. ATEN_CPU_CAPABILITY=avx512 to use the machine's widest kernels).
"""

from __future__ import annotations

import os

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def pin_cpu_kernels() -> dict[str, str]:
    """Put the pinned kernel choices into the environment where none is set; returns those in effect."""
    for name, value in PINNED.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in PINNED}


def cpu_capability() -> str:
    """The vector kernels torch dispatches to in this process ("avx2", "avx512", "default", ...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability()).lower()
