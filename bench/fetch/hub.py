"""Files from the Hugging Face hub through huggingface_hub, checked against what the hub says they are.

huggingface_hub's `local_dir` downloads give the rest: a file is written to `.cache/huggingface/download/...
.incomplete` and renamed into place when complete (an interrupted download resumes from there), and a file whose
recorded ETag still matches the hub is not downloaded again. On top of that, a freshly downloaded file is checked
against the size and checksum from the hub's HEAD answer (sha256 for LFS files, the git blob sha1 for the others),
and a folder appears under its final name only once every file is in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.util.errors import UserError
from bench.util.logs import get_logger

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20
# a transformers checkpoint folder: what from_pretrained reads from the repo's top level
MODEL_PATTERNS = ("*.json", "*.txt", "*.model", "*.tiktoken")
WEIGHT_PATTERNS = (("model.safetensors", "model-*-of-*.safetensors"), ("pytorch_model.bin", "pytorch_model-*-of-*.bin"))


def require_online() -> None:
    """Refuse, naming the variable to unset, when the environment asks huggingface_hub to stay offline."""
    on = [f"{v}={os.environ[v]}" for v in OFFLINE_VARS if os.environ.get(v, "").strip().upper() in _TRUE]
    if on:
        raise UserError(f"fetch downloads from the internet, but {' and '.join(on)} is set (nox sets it for every "
                        "session; it keeps the benchmark offline). Run fetch outside nox with it unset: "
                        "`env -u HF_HUB_OFFLINE -u TRANSFORMERS_OFFLINE glip-bench fetch ...`")
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise UserError("huggingface_hub was imported in this process while HF_HUB_OFFLINE was set, so it stays "
                        "offline; run `glip-bench fetch` as its own command, with HF_HUB_OFFLINE unset")


def quiet_if_asked() -> None:
    """huggingface_hub's progress bars follow GLIP_BENCH_NO_PROGRESS like the project's own."""
    if os.environ.get("GLIP_BENCH_NO_PROGRESS"):
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def endpoint() -> str:
    """The hub's address: $HF_ENDPOINT (a mirror, or a test server), read when called."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def file_url(repo: str, filename: str, revision: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, filename, revision=revision, endpoint=endpoint())


@contextmanager
def network_errors(url: str) -> Iterator[None]:
    """Turn a failed request into a UserError (rc 2) that names the address and what to do."""
    import httpx2
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
    )

    try:
        yield
    except GatedRepoError:
        raise UserError(f"{url}: the repository is gated; accept its terms on the hub and log in "
                        "(`hf auth login`, or set HF_TOKEN)") from None
    except (RepositoryNotFoundError, EntryNotFoundError) as e:
        raise UserError(f"{url}: not found on the hub ({type(e).__name__}); the file may have moved: check the "
                        "repository's file list, or pass --revision") from None
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as e:
        cause = e.__cause__ or e
        raise UserError(f"could not download {url}: {type(cause).__name__}: {cause}. Check the connection (a proxy: "
                        "HTTPS_PROXY; a mirror: HF_ENDPOINT) and run the same command again: finished files are "
                        "kept and a partial one resumes") from None


@dataclass(frozen=True)
class Remote:
    """What the hub's HEAD answer says a file is."""

    url: str
    size: int | None
    etag: str | None
    commit: str | None


def head(repo: str, filename: str, revision: str) -> Remote:
    from huggingface_hub import get_hf_file_metadata

    url = file_url(repo, filename, revision)
    with network_errors(url):
        meta = get_hf_file_metadata(url, endpoint=endpoint())
    return Remote(url, meta.size, meta.etag, meta.commit_hash)


def checksum(path: Path, etag: str | None) -> tuple[str, str] | None:
    """(algorithm, hex digest) of `path` in the form the hub's ETag takes, or None when the ETag is neither."""
    if etag and _SHA256.fullmatch(etag):
        digest = hashlib.sha256()
    elif etag and _GIT_SHA1.fullmatch(etag):
        digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)  # git's blob id: sha1 of header + content
    else:
        return None
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return ("sha256" if len(etag) == 64 else "git-sha1"), digest.hexdigest()


def verify(path: Path, remote: Remote) -> None:
    """Size and checksum of a fresh download against the hub's answer; a mismatch deletes the file (rc 2)."""
    size = path.stat().st_size
    got = checksum(path, remote.etag) if remote.size in (None, size) else None
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"{size} bytes, the hub says {remote.size}"
    elif got is not None and got[1] != remote.etag:
        problem = f"{got[0]} {got[1]}, the hub says {remote.etag}"
    if problem:
        path.unlink()
        raise UserError(f"{path} is {problem} ({remote.url}); it was deleted: run the command again to download it")
    if got is None:
        get_logger().warning("%s: only its size could be checked (the hub gave no checksum)", path.name)


def _state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def fetch_file(repo: str, filename: str, local_dir: Path, revision: str = "main", force: bool = False,
               recheck: bool = False) -> Path:
    """`filename` of `repo` at `local_dir/filename`; skipped when already there with the hub's current ETag
    (`recheck`: then hash it again against the hub's checksum)."""
    from huggingface_hub import hf_hub_download

    remote = head(repo, filename, revision)
    target = local_dir / filename
    before = _state(target)
    with network_errors(remote.url):
        path = Path(hf_hub_download(repo, filename, revision=revision, local_dir=local_dir, endpoint=endpoint(),
                                    force_download=force))
    fresh = force or _state(path) != before
    if fresh or recheck:
        verify(path, remote)
    get_logger().info("%s %s (%s bytes)", "downloaded" if fresh else "already present:", path, path.stat().st_size)
    return path


def fetch_folder(repo: str, files: list[str], dest: Path, revision: str = "main", force: bool = False,
                 recheck: bool = False) -> Path:
    """`files` of `repo` as the folder `dest`: built in `dest.partial` and renamed when complete (an existing
    `dest` is brought up to date in place, file by file)."""
    work = dest if dest.is_dir() else dest.with_name(dest.name + ".partial")
    for name in files:
        fetch_file(repo, name, work, revision, force, recheck)
    if work != dest:
        os.replace(work, dest)
    return dest


def model_files(repo: str, revision: str) -> list[str]:
    """The top-level files of a transformers repo that from_pretrained reads: configs, tokenizer and processor
    files, and one weight format (safetensors if the repo has it, else pytorch_model.bin)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    url = f"{endpoint()}/api/models/{repo}/tree/{revision}"
    with network_errors(url):
        names = [e.path for e in HfApi(endpoint=endpoint()).list_repo_tree(repo, revision=revision)
                 if isinstance(e, RepoFile)]
    keep = [n for n in names if any(fnmatch.fnmatch(n, p) for p in MODEL_PATTERNS)]
    for patterns in WEIGHT_PATTERNS:
        weights = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
        if weights:
            return keep + weights
    raise UserError(f"{url}: {repo} has no model.safetensors or pytorch_model.bin at its top level; it is not a "
                    "transformers checkpoint glip-bench can load")
