"""Unpack a downloaded data set zip into the data root, all or nothing, refusing members that would land outside it.

The zip is checked before anything is written (no absolute or `..` paths, no links, room on the disk for what it
unpacks to), unpacked into a hidden folder beside the destination, and only then are its top-level folders renamed
into place; a marker (`.fetched/<zip>.json`) records what was unpacked, so a second fetch skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from bench.util.errors import UserError

IGNORED_TOP = ("__MACOSX",)  # macOS resource forks some zips carry


def marker_path(into: Path, zip_name: str) -> Path:
    return into / ".fetched" / f"{zip_name}.json"


def unpacked(into: Path, zip_name: str) -> list[str] | None:
    """The top-level folders a previous fetch unpacked from `zip_name`, if they are all still there."""
    marker = marker_path(into, zip_name)
    if not marker.is_file():
        return None
    try:
        tops = json.loads(marker.read_text())["top_level"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return tops if all((into / t).exists() for t in tops) else None


def _check_members(zf: zipfile.ZipFile, zip_path: Path, into: Path) -> list[str]:
    """Top-level names of a zip whose every member stays inside `into`; refuses anything else."""
    tops: set[str] = set()
    for info in zf.infolist():
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if not parts or info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise UserError(f"{zip_path}: member {info.filename!r} would be written outside {into}; not unpacked")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UserError(f"{zip_path}: member {info.filename!r} is a symbolic link; not unpacked")
        if parts[0] not in IGNORED_TOP:
            tops.add(parts[0])
    need = sum(i.file_size for i in zf.infolist())
    free = shutil.disk_usage(into).free
    if need > free:
        raise UserError(f"{zip_path} unpacks to {need} bytes but {into} has {free} free; make room and run again")
    return sorted(tops)


def unpack(zip_path: Path, into: Path, zip_name: str, replace: bool = False) -> list[str]:
    """Unpack `zip_path` into `into`; returns the top-level folders written. An existing folder of the same name
    that no fetch recorded is refused unless `replace`."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        zip_path.unlink(missing_ok=True)
        raise UserError(f"{zip_path}: not a readable zip ({e}); it was deleted, run the command again") from None
    with zf:
        tops = _check_members(zf, zip_path, into)
        clash = [t for t in tops if (into / t).exists()]
        if clash and not replace:
            raise UserError(f"{', '.join(str(into / t) for t in clash)} already exist(s) but no fetch recorded "
                            f"unpacking {zip_name} there; move it away, or pass --force to replace it")
        work = Path(tempfile.mkdtemp(prefix=f".unpack-{zip_name}-", dir=into))
        try:
            zf.extractall(work)
            for t in tops:
                if (into / t).is_dir() and not (into / t).is_symlink():
                    shutil.rmtree(into / t)
                elif (into / t).exists():
                    (into / t).unlink()
                os.replace(work / t, into / t)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    marker = marker_path(into, zip_name)
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(json.dumps({"zip": zip_name, "top_level": tops}, indent=1) + "\n")
    return tops
