"""Data-parallel inference: every rank predicts an exact, disjoint part of a split, writes it as shard files in
the run folder, and rank 0 merges them, checking that every image is covered exactly once.

The split (its keys: image ids, or grounding sample ids, in data-set order) is cut into consecutive pieces of
`piece_size`; piece k belongs to rank k % world_size. No image is padded in or duplicated to even out the
ranks (the last piece is just shorter). Each finished piece is written atomically (bench.util.io) to

    <run folder>/shards/piece-<k>-of-<n>.json   {"fingerprint", "piece", "num_pieces", "keys", "predictions"}

so a run that crashes keeps what it finished: the rerun (with any number of ranks) reuses every piece file
whose fingerprint and keys match and predicts only the missing ones. The fingerprint hashes the caller's
identity of the run (spec hash, checkpoint) together with the keys and the piece size.

    result = predict_sharded(lambda ids: predict_detection(model, ds, chunks, cap, image_ids=ids)[0],
                             ds.image_ids, folder, fingerprint=spec.hash)
    result.predictions  # the merged list on rank 0, None on the other ranks
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.dist import comm as dist
from bench.util.errors import UserError
from bench.util.io import atomic_write_json, sha256_json
from bench.util.logs import get_logger

SHARD_DIR = "shards"
log = get_logger("inference_dist")

__all__ = ["ShardResult", "plan_pieces", "piece_path", "predict_sharded", "merge_shards", "iter_shards", "remove_shards",
           "SHARD_DIR"]


@dataclass
class ShardResult:
    """What this rank did: pieces it predicted and reused, its seconds, and (rank 0) the merged predictions."""

    predictions: list[dict[str, Any]] | None
    computed: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    seconds: float = 0.0
    num_pieces: int = 0


def plan_pieces(keys: Sequence[int], piece_size: int) -> list[list[int]]:
    """Consecutive pieces of `piece_size` keys (the last one shorter); duplicate keys are an error."""
    if piece_size < 1:
        raise UserError(f"piece_size must be >= 1, got {piece_size}")
    dup = sorted(k for k, c in Counter(keys).items() if c > 1)
    if dup:
        raise UserError(f"the split lists image ids more than once: {dup[:10]}")
    keys = [int(k) for k in keys]
    return [keys[i: i + piece_size] for i in range(0, len(keys), piece_size)]


def piece_path(folder: str | Path, piece: int, num_pieces: int) -> Path:
    return Path(folder) / SHARD_DIR / f"piece-{piece:05d}-of-{num_pieces:05d}.json"


def _fingerprint(run_id: str, keys: Sequence[int], piece_size: int) -> str:
    return sha256_json({"run": run_id, "keys": [int(k) for k in keys], "piece_size": piece_size})[:16]


def _read_piece(path: Path) -> dict[str, Any] | None:
    """A piece file's content, or None if it is missing or unreadable (then it is predicted again)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable shard %s: %s", path, e)
        return None
    return data if isinstance(data, dict) else None


def predict_sharded(predict: Callable[[list[int]], list[dict[str, Any]]], keys: Sequence[int],
                    folder: str | Path, *, fingerprint: str, piece_size: int = 32, key_field: str = "image_id",
                    rank: int | None = None, world_size: int | None = None, merge: bool = True) -> ShardResult:
    """Predict this rank's pieces (reusing finished piece files), wait for all ranks, merge on rank 0.

    predict(keys) -> prediction dicts whose `key_field` is one of `keys` (a rank-local call: one process's
    model on its own device). rank / world_size default to the process group's (0 / 1 without one).
    merge=False: leave `predictions` None; rank 0 reads the pieces with `iter_shards` (one file at a time).
    """
    rank = dist.rank() if rank is None else rank
    world = dist.world_size() if world_size is None else world_size
    if not 0 <= rank < world:
        raise UserError(f"rank {rank} is not in 0..{world - 1}")
    start = time.perf_counter()
    pieces = plan_pieces(keys, piece_size)
    n = len(pieces)
    fp = _fingerprint(fingerprint, keys, piece_size)
    result = ShardResult(predictions=None, num_pieces=n)
    shard_dir = Path(folder) / SHARD_DIR
    for k in range(rank, n, world):
        path = piece_path(folder, k, n)
        for tmp in shard_dir.glob(f".{path.name}.*.tmp"):  # an interrupted write of this piece
            tmp.unlink(missing_ok=True)
        done = _read_piece(path)
        if done is not None and done.get("fingerprint") == fp and done.get("keys") == pieces[k]:
            result.reused.append(k)
            continue
        preds = predict(list(pieces[k]))
        wanted = set(pieces[k])
        stray = sorted({p[key_field] for p in preds} - wanted)
        if stray:
            raise RuntimeError(f"predictions for piece {k} name {key_field}s outside it: {stray[:10]}")
        atomic_write_json(path, {"fingerprint": fp, "piece": k, "num_pieces": n, "keys": pieces[k],
                                 "predictions": preds}, indent=None)
        result.computed.append(k)
    log.info("rank %d/%d: predicted pieces %s, reused %s", rank, world, result.computed, result.reused)
    dist.barrier()
    if rank == 0 and merge:
        result.predictions = merge_shards(folder, keys, fingerprint=fingerprint, piece_size=piece_size,
                                          key_field=key_field)
    result.seconds = time.perf_counter() - start
    return result


def merge_shards(folder: str | Path, keys: Sequence[int], *, fingerprint: str, piece_size: int = 32,
                 key_field: str = "image_id") -> list[dict[str, Any]]:
    """The predictions of every piece file of this run, in the order of `keys` (one list: `iter_shards`
    hands them over key by key instead)."""
    return [p for _, preds in iter_shards(folder, keys, fingerprint=fingerprint, piece_size=piece_size,
                                          key_field=key_field) for p in preds]


def iter_shards(folder: str | Path, keys: Sequence[int], *, fingerprint: str, piece_size: int = 32,
                key_field: str = "image_id") -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(key, its predictions) for every key, in the order of `keys`, reading one piece file at a time.

    Every key must be covered by exactly one piece file: a UserError (before anything is handed over)
    names the missing and the duplicated image ids (and the files covering the duplicates). Files of
    another run or plan are ignored.
    """
    fp = _fingerprint(fingerprint, keys, piece_size)
    wanted = [int(k) for k in keys]
    covered: dict[int, list[str]] = {}
    files: list[Path] = []
    for path in sorted((Path(folder) / SHARD_DIR).glob("piece-*.json")):
        data = _read_piece(path)
        if data is None or data.get("fingerprint") != fp:
            continue
        files.append(path)
        for k in data["keys"]:
            covered.setdefault(int(k), []).append(path.name)
    _check_cover(folder, wanted, covered)
    order = iter(wanted)
    for path in files:  # named by piece number; pieces are consecutive keys, so this is the keys' order
        data = _read_piece(path)
        if data is None:
            raise UserError(f"{path} became unreadable while the shards were merged; rerun the same command")
        piece_keys = [int(k) for k in data["keys"]]
        by_key: dict[int, list[dict[str, Any]]] = {k: [] for k in piece_keys}
        for p in data["predictions"]:
            if p[key_field] not in by_key:
                raise UserError(f"{path} holds a prediction for {key_field} {p[key_field]} outside its piece")
            by_key[p[key_field]].append(p)
        for k, preds in by_key.items():
            if k != next(order):
                raise UserError(f"{path}: its keys are not in the split's order; rerun the same command")
            yield k, preds


def _check_cover(folder: str | Path, wanted: list[int], covered: dict[int, list[str]]) -> None:
    missing = [k for k in wanted if k not in covered]
    duplicated = {k: files for k, files in covered.items() if len(files) > 1}
    unknown = sorted(set(covered) - set(wanted))
    if missing or duplicated or unknown:
        parts = []
        if missing:
            parts.append(f"{len(missing)} image ids have no shard: {missing[:20]}")
        if duplicated:
            parts.append(f"{len(duplicated)} image ids are in several shards: "
                         + ", ".join(f"{k} ({' + '.join(f)})" for k, f in list(duplicated.items())[:10]))
        if unknown:
            parts.append(f"{len(unknown)} shard image ids are not in the split: {unknown[:20]}")
        raise UserError(f"cannot merge the shards in {Path(folder) / SHARD_DIR}: " + "; ".join(parts)
                        + ". Rerun the same command to predict the missing pieces.")


def remove_shards(folder: str | Path) -> None:
    """Delete the shard files once the merged predictions are saved (rank 0, after the record is written)."""
    shard_dir = Path(folder) / SHARD_DIR
    if shard_dir.is_dir():
        for p in shard_dir.iterdir():
            p.unlink(missing_ok=True)
        shard_dir.rmdir()
