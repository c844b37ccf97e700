"""File helpers: atomic writes (temp file + rename), bounded reads of user files, hashing."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.util.errors import UserError

# what a write into a user's folder can meet that the user fixes, and how
_WRITE_FIXES = {
    errno.ENOSPC: "free some disk space (or pass another --results folder), then rerun: finished runs are kept",
    errno.EDQUOT: "free some space within your quota (or pass another --results folder), then rerun",
    errno.EROFS: "the file system is read-only: pass a writable --results folder",
    errno.EACCES: "make the folder writable, or pass another --results folder",
    errno.EPERM: "make the folder writable, or pass another --results folder",
    errno.ENOTDIR: "a path above it is a file, not a folder: pass a folder as --results",
}


@contextmanager
def user_write(path: str | os.PathLike) -> Iterator[None]:
    """Turn the OSError of a write the user can fix (full disk, read-only or foreign folder) into a UserError
    naming `path` and the fix; other OSErrors pass through."""
    try:
        yield
    except OSError as e:
        if e.errno not in _WRITE_FIXES:
            raise
        raise UserError(f"cannot write {path}: {e.strerror or e}; {_WRITE_FIXES[e.errno]}") from None


def umask_mode() -> int:
    """The mode open() would give a new file under the process umask (mkstemp's own is always 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` so that `path` either holds the old content or all of the new one, never a part."""
    path = Path(path)
    with user_write(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, umask_mode())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in metrics and specs
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ---- bounded reads ------------------------------------------------------------------------------
# A user file (predictions, annotations) is read whole, so its size is bounded: at most MAX_READ_ENV bytes
# (after decompression), and a gzip file may not expand more than MAX_RATIO_ENV times its own size.
# The default limit is above the largest legitimate file: an LVIS-val predictions file that keeps every
# chunk's detections (19,809 images x 300 per image per chunk x 31 chunks of 40 classes = 184M detections
# at 146.5 bytes each as orjson writes them: 25.1 GiB; 8.7 GiB gzipped). The ratio bound stops a gzip bomb
# at any limit: that file compresses 2.9:1, COCO/LVIS annotation files about 5-10:1, whitespace 1000:1.
MAX_READ_ENV = "GLIP_BENCH_MAX_READ"
MAX_RATIO_ENV = "GLIP_BENCH_MAX_GZIP_RATIO"
DEFAULT_MAX_READ = 32 << 30
DEFAULT_MAX_RATIO = 100
GZIP_MAGIC = b"\x1f\x8b"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, what: str = MAX_READ_ENV) -> int:
    """'512M', '32G', '1000' -> bytes (K/M/G/T are powers of 1024; a trailing B/iB is allowed)."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        value = float("nan")
    if not value >= 1 or value == float("inf"):  # NaN fails too
        raise UserError(f"{what}={text!r} is not a size: write bytes, or a number with K, M, G or T (e.g. 32G)")
    return int(value * _UNITS[unit])


def max_read_bytes() -> int:
    """The byte limit of a user-file read: $GLIP_BENCH_MAX_READ (set by --max-read), else 32 GiB."""
    env = os.environ.get(MAX_READ_ENV, "").strip()
    return parse_size(env) if env else DEFAULT_MAX_READ


def max_gzip_ratio() -> float:
    """How many times its own size a gzip user file may expand: $GLIP_BENCH_MAX_GZIP_RATIO, else 100."""
    env = os.environ.get(MAX_RATIO_ENV, "").strip()
    return parse_size(env, MAX_RATIO_ENV) if env else DEFAULT_MAX_RATIO


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def read_user_bytes(path: str | os.PathLike, what: str = "file", limit: int | None = None,
                    ratio: float | None = None) -> bytes | bytearray:
    """The bytes of a user file, gunzipped if it is gzip (by its magic bytes), never more than `limit`
    (default: max_read_bytes()) nor, for gzip, more than `ratio` times the file's size (plus 1 MiB).
    Decompression is streamed, so a bomb stops at the bound instead of filling memory. Past a bound: a
    UserError naming the file, the bound and how to raise it. gzip/zlib errors pass through to the caller
    (each names its own fix for a truncated file)."""
    import gzip

    path = Path(path)
    limit = max_read_bytes() if limit is None else limit
    ratio = max_gzip_ratio() if ratio is None else ratio
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != GZIP_MAGIC:
        if size > limit:
            raise UserError(f"{what} {path} is {_fmt_bytes(size)}, above the read limit of {_fmt_bytes(limit)}; "
                            f"if the file is right, raise the limit with --max-read SIZE (or ${MAX_READ_ENV})")
        return path.read_bytes()
    bound = min(limit, int(ratio * size) + (1 << 20))
    out = bytearray()
    with gzip.open(path, "rb") as g:
        while chunk := g.read(min(1 << 24, bound + 1 - len(out))):
            out += chunk
            if len(out) > bound:
                why = (f"the read limit of {_fmt_bytes(limit)}; if the file is right, raise it with --max-read SIZE "
                       f"(or ${MAX_READ_ENV})") if bound == limit else (
                       f"{ratio:g} times its compressed size ({_fmt_bytes(size)}), which no JSON file this tool "
                       f"reads needs (a gzip bomb?); if the file is right, raise ${MAX_RATIO_ENV}")
                raise UserError(f"{what} {path} decompresses to more than {_fmt_bytes(bound)}: above {why}")
    return out


def read_json(path: str | os.PathLike, what: str = "file", how: str = "") -> Any:
    """Read a JSON file (or gzipped JSON), bounded as read_user_bytes; a missing, oversized or malformed
    file raises an error that names it (and, if given, `how` to obtain it)."""
    import gzip
    import zlib

    path = Path(path)
    hint = f"\n  how to obtain it: {how}" if how else ""
    if path.exists() and not path.is_file():
        raise UserError(f"{what} {path} is not a file")
    if not path.is_file():
        raise UserError(f"{what} not found: {path}{hint}")
    try:
        return json.loads(read_user_bytes(path, what))
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise UserError(f"{what} {path} is a truncated or corrupt gzip file ({type(e).__name__}: {e})") from e
    except json.JSONDecodeError as e:
        raise UserError(f"malformed JSON in {path}: {e} (re-download or re-extract the file)") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 JSON: {e}") from e


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """A stable hash of a JSON-serialisable value (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()
