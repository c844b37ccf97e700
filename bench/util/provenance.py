"""What produced a number: code version, library versions, hardware. Goes into every record.

The git commit and dirty flag are those of the checkout the `bench` package was imported from (found
from the package location, not the current directory, which may be another checkout); an installed
copy outside any git checkout reports None for both.
"""

from __future__ import annotations

import copy
import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.util.io import sha256_file

# libraries whose version can move a number in a record
PACKAGES = (
    "glip-bench", "torch", "transformers", "tokenizers", "safetensors", "mmengine", "numpy", "pillow",
    "pycocotools", "lvis", "hotcoco",
)


def package_root() -> Path:
    """The folder that holds the bench package (the repository root for an editable install)."""
    return Path(__file__).resolve().parents[2]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root: Path | None = None, ignore: tuple[str, ...] = ()) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding `root`; dirty = tracked files differ from HEAD.

    Untracked files do not count (a results folder or data inside the checkout must not make every
    record dirty), nor do tracked files under `ignore` (folders relative to `root`: the results folder
    the run writes into, whose committed records a rerun rewrites). Not a checkout, or no git: (None, None).
    """
    root = package_root() if root is None else root
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is None or Path(top).resolve() != root.resolve():
        # the package sits inside some other repository (or none): its commit would not describe this code
        return None, None
    commit = _git(["rev-parse", "HEAD"], root)
    excludes = [f":(exclude){p}" for p in ignore]
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", *excludes], root)
    return commit, (None if status is None else bool(status))


def ignored_for_dirty(results_dir: str | os.PathLike | None) -> tuple[str, ...]:
    """The results folder as a path inside the package's checkout (what git_state leaves out), or () when it
    lies outside the checkout (then it cannot make the checkout dirty anyway)."""
    if results_dir is None:
        return ()
    root, folder = package_root().resolve(), Path(results_dir).resolve()
    if folder == root or not folder.is_relative_to(root):
        return ()
    return (folder.relative_to(root).as_posix(),)


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_name(device: str) -> str:
    """A readable device name for records ("NVIDIA H200", "cpu: x86_64, 2 threads")."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu: {platform.machine() or 'unknown'}, {torch.get_num_threads()} threads"


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | os.PathLike | None) -> str | None:
    """sha256 of a file, cached per (path, size, mtime) so a sweep hashes a large checkpoint once."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    st = p.stat()
    return _sha256_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


def checkpoint_pretrain_seed(checkpoint: str | os.PathLike | None) -> int | None:
    """The pretraining seed named in the metadata beside a checkpoint (<name>.json, key `pretrain_seed`,
    written where the weights were pretrained), or None when there is none: a run's result varies with it."""
    import json

    if checkpoint is None:
        return None
    meta = Path(checkpoint).with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        seed = json.loads(meta.read_text(encoding="utf-8")).get("pretrain_seed")
    except (OSError, ValueError, AttributeError):
        return None
    return seed if isinstance(seed, int) else None


@functools.lru_cache(maxsize=8)
def _environment(ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    import torch

    commit, dirty = git_state(ignore=ignore)
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "git_dirty_ignores": list(ignore),
        "packages": package_versions(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "platform": platform.platform(),
    }


def environment(results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The parts of a record's provenance that do not depend on the run.

    Taken once per process (and results folder), at its first record: a process keeps running the code it
    imported, so that git state describes every record of the sweep (and git is not asked again for every
    run). git_dirty leaves out the results folder (git_dirty_ignores names it): the runs' own outputs.
    """
    return copy.deepcopy(_environment(ignored_for_dirty(results_dir)))


def provenance(
    *,
    seeds: dict[str, int],
    ann_sha256: dict[str, str | None],
    checkpoint: str | None,
    prompt_set: str,
    chunk_size: int | None,
    metric_backend: str,
    extra: dict[str, Any] | None = None,
    results_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The record's provenance section (bench/results/records.py PROVENANCE_KEYS, plus python/platform);
    results_dir: the folder the record goes to, left out of git_dirty."""
    import torch

    from bench.util.cpu_kernels import cpu_capability, kernel_fingerprint

    out = environment(results_dir)
    out.update(
        torch_threads=torch.get_num_threads(),  # a reduction's order, so its float result, can follow it
        cpu_capability=cpu_capability(),  # so can the vector kernels (bench.util.cpu_kernels)
        kernels=kernel_fingerprint(),  # and the CPU model under them: bit-identity holds within one fingerprint
        seeds=dict(seeds),
        ann_sha256=dict(ann_sha256),
        checkpoint_sha256=file_sha256(checkpoint),
        prompt_set=prompt_set,
        chunk_size=chunk_size,
        metric_backend=metric_backend,
    )
    if extra:
        out.update(extra)
    return out
