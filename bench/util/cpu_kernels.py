"""One CPU kernel set for the studies whose numbers are committed (demo, claims), and a fingerprint of the
kernels a process actually ran, so that a reproduction check knows when bit-identity can be expected.

torch, oneDNN and MKL each pick their vector kernels by what the CPU offers, and a different pick changes
float results, which pretraining from scratch amplifies: on an AVX-512 machine every one of the quick
demo's 24 records moved against records made where AVX2 was picked; with the settings below in the
environment all 24 were identical, bit for bit. On a third machine (another CPU model with AVX-512, same
pins) all 24 moved again: the libraries' choices follow more than the instruction set (cache sizes and
the CPU model enter their blocking), so the pins make results reproducible across machines of one CPU
model, not across models. `kernel_fingerprint` names what was measured to matter; records keep it
(provenance.kernels) and `bench.results.compare` expects bit-identity only between equal fingerprints.

The pins act only if set before torch runs its first kernel, so commands set them before importing torch;
worker processes inherit them. A value already in the environment wins (e.g. ATEN_CPU_CAPABILITY=avx512).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
# environment variables that change which kernels run (MKL_CBWR: MKL's reproducibility mode)
KERNEL_ENV = (*PINNED, "MKL_CBWR")
# the CPU flags of the vector units the libraries dispatch on
_ISA_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4", "vnni")


def pin_cpu_kernels() -> dict[str, str]:
    """Put the pinned kernel choices into the environment where none is set; returns those in effect."""
    for name, value in PINNED.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in PINNED}


def cpu_capability() -> str:
    """The vector kernels torch dispatches to in this process ("avx2", "avx512", "default", ...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability()).lower()


def _cpuinfo(text: str) -> dict[str, Any]:
    """Model and vector flags of the first processor in a /proc/cpuinfo text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor only
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = sorted(f for f in fields.get("flags", "").split() if f.startswith(_ISA_PREFIXES))
    return {"model_name": fields.get("model name"), "family_model_stepping":
            "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping")), "isa_flags": flags}


def _cache_sizes(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> list[str]:
    """["L1 Data 48K", "L2 Unified 2048K", ...]: oneDNN and MKL size their blocks by these."""
    out = []
    for index in sorted(root.glob("index*")):
        try:
            out.append(" ".join((index / n).read_text().strip() for n in ("level", "type", "size")))
        except OSError:
            continue
    return out


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """What of this CPU decides kernels: model, vector flags, caches (Linux; elsewhere the platform's name)."""
    try:
        desc = _cpuinfo(cpuinfo.read_text(errors="replace"))
    except OSError:
        desc = {"model_name": platform.processor() or platform.machine(), "family_model_stepping": None,
                "isa_flags": []}
    return {**desc, "machine": platform.machine(), "caches": _cache_sizes()}


def kernel_fingerprint() -> dict[str, Any]:
    """The kernel set of this process: the CPU, torch's pick, the kernel environment, torch's build and threads.

    Two processes with the same `id` ran the same kernels in the same order as far as measured here; a
    different id means float results may differ in the last bits (and more, after training)."""
    import torch

    desc = {"cpu": cpu_description(), "cpu_capability": cpu_capability(),
            "env": {k: os.environ.get(k) for k in KERNEL_ENV}, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}
    digest = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]
    return {"id": digest, **desc}
