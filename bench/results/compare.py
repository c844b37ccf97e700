"""Fresh records against committed ones: which numbers moved, by how much, and what in the environment differs.

A fresh run matches the committed record of the same spec hash. Specs name their checkpoint by a path
relative to the results folder it was made for, so a run into another folder has another hash; it then
matches the committed record whose spec is the same once checkpoints are reduced to their file name
(which carries the hash of the config and budget that made the weights: bench.studies.demo.checkpoint_path).

    python -m bench.results.compare FRESH_DIR REFERENCE_DIR   # rc 0 identical, 1 moved or missing, 2 bad input
    python -m bench.results.compare FRESH_DIR REFERENCE_DIR --update   # the fresh records become the reference
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.results import store
from bench.results.records import RunSpec
from bench.util.errors import UserError
from bench.util.io import sha256_json

# provenance that is expected to differ between two runs of the same thing, so it does not explain a move
IGNORED_PROVENANCE = ("captions",)


@dataclass
class RecordDiff:
    """One fresh record against its committed twin."""

    run_name: str
    status: str  # "identical", "moved" or "no reference"
    moved: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # metric -> (committed, fresh)
    provenance: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (committed, fresh)


def _portable_key(spec: dict[str, Any]) -> str:
    """The spec's hash with its checkpoint reduced to the file name (see the module docstring)."""
    ckpt = spec.get("checkpoint")
    return sha256_json({**spec, "checkpoint": Path(ckpt).name if ckpt else ckpt})


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _same(a: Any, b: Any, tolerance: float = 0.0) -> bool:
    """Equal (within `tolerance` for numbers), with NaN equal to NaN (an undefined AP is the same result twice)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if tolerance and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tolerance
    return a == b


def _metrics(record: dict[str, Any]) -> dict[str, Any]:
    m = record["metrics"]
    return {**m.get("values", {}), **{f"per_class.{k}": v for k, v in (m.get("per_class") or {}).items()}}


def _provenance(record: dict[str, Any]) -> dict[str, Any]:
    prov = {k: v for k, v in record["provenance"].items() if k not in IGNORED_PROVENANCE}
    kernels = prov.pop("kernels", None) or {}
    if kernels:  # one line for the kernel set: its id names it, the CPU and torch's pick say what it is
        cpu = kernels.get("cpu") or {}
        prov["kernels"] = (f"{kernels.get('id')} ({cpu.get('model_name')} {cpu.get('family_model_stepping')}, "
                           f"{kernels.get('cpu_capability')} kernels)")
    # the machine the run saw: the device string holds the CPU kind and torch's thread count
    return _flat(prov) | {"device": record.get("cost", {}).get("device")}


def diff_record(fresh: dict[str, Any], committed: dict[str, Any], tolerance: float = 0.0) -> RecordDiff:
    """Metrics compared exactly (a reproduction is bit for bit or it moved), or within `tolerance` points
    where the kernels differ (bench.studies.reproduce); provenance field by field."""
    fm, cm = _metrics(fresh), _metrics(committed)
    moved = {k: (cm.get(k), fm.get(k)) for k in sorted(fm.keys() | cm.keys())
             if not _same(fm.get(k), cm.get(k), tolerance)}
    fp, cp = _provenance(fresh), _provenance(committed)
    prov = {k: (cp.get(k), fp.get(k)) for k in sorted(fp.keys() | cp.keys()) if not _same(fp.get(k), cp.get(k))}
    return RecordDiff(_run_name(fresh), "moved" if moved else "identical", moved, prov)


def _run_name(record: dict[str, Any]) -> str:
    return RunSpec.from_dict(record["spec"]).run_name


class Reference:
    """The committed records of a folder, read once (the demo may then overwrite that folder)."""

    def __init__(self, folder: str | Path, records: list[dict[str, Any]]):
        self.folder = Path(folder)
        self.by_hash = {r["spec_hash"]: r for r in records}
        self.by_key = {_portable_key(r["spec"]): r for r in records}

    def records(self) -> list[dict[str, Any]]:
        return list(self.by_hash.values())

    @classmethod
    def load(cls, folder: str | Path) -> Reference:
        folder = Path(folder)
        return cls(folder, store.load_records(folder) if folder.is_dir() else [])

    def find(self, record: dict[str, Any]) -> dict[str, Any] | None:
        return self.by_hash.get(record["spec_hash"]) or self.by_key.get(_portable_key(record["spec"]))


def compare(fresh: list[dict[str, Any]], reference: Reference, tolerance: float = 0.0) -> list[RecordDiff]:
    """Each fresh record against its committed twin, in the order given."""
    out = []
    for rec in fresh:
        twin = reference.find(rec)
        out.append(diff_record(rec, twin, tolerance) if twin is not None
                   else RecordDiff(_run_name(rec), "no reference"))
    return out


def kernel_ids(records: list[dict[str, Any]]) -> set[str | None]:
    """The kernel fingerprints the records were made with (bench.util.cpu_kernels; None: not recorded)."""
    return {(r["provenance"].get("kernels") or {}).get("id") for r in records}


def same_kernels(fresh: list[dict[str, Any]], reference: Reference) -> bool:
    """Whether bit-identity can be expected: one recorded fingerprint on both sides, the same."""
    ids = kernel_ids(fresh)
    return len(ids) == 1 and None not in ids and ids == kernel_ids(reference.records())


def largest_move(diffs: list[RecordDiff]) -> float:
    """The largest |fresh - committed| over every compared metric (inf where one side lacks a value)."""
    return max((_delta(pair) for d in diffs for pair in d.moved.values()), default=0.0)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def headline(diffs: list[RecordDiff], reference: Reference) -> str:
    """One line a reader sees first: reproduced or not."""
    n = len(diffs)
    moved = sum(d.status == "moved" for d in diffs)
    missing = sum(d.status == "no reference" for d in diffs)
    if not reference.by_hash:
        return f"Reproduction: no committed records in {reference.folder} to compare the {n} fresh records with."
    if moved == missing == 0:
        return f"Reproduction: all {n} records identical to the committed ones in {reference.folder} (every metric, bit for bit)."
    parts = [f"{moved} of {n} records moved"] + ([f"{missing} have no committed record"] if missing else [])
    return f"Reproduction: NOT identical to {reference.folder}: {', '.join(parts)} (details below)."


def report(diffs: list[RecordDiff], reference: Reference, max_metrics: int = 6) -> str:
    """Markdown: the headline, then per moved record the largest moves and the provenance that differs."""
    lines = [headline(diffs, reference)]
    if not reference.by_hash:
        return lines[0] + "\n"
    provenance_seen: dict[str, tuple[Any, Any]] = {}
    for d in diffs:
        provenance_seen |= d.provenance
        if d.status == "no reference":
            lines.append(f"- {d.run_name}: no committed record of this spec")
        elif d.status == "moved":
            top = sorted(d.moved.items(), key=lambda kv: -_delta(kv[1]))[:max_metrics]
            moves = ", ".join(f"{k} {_fmt(a)} -> {_fmt(b)}" for k, (a, b) in top)
            more = len(d.moved) - len(top)
            lines.append(f"- {d.run_name}: {moves}" + (f" (+{more} more)" if more > 0 else ""))
    if provenance_seen:
        lines.append("Provenance that differs from the committed records (committed -> fresh): "
                     + "; ".join(f"{k} {_fmt(a)} -> {_fmt(b)}" for k, (a, b) in sorted(provenance_seen.items())))
    return "\n".join(lines) + "\n"


def _delta(pair: tuple[Any, Any]) -> float:
    a, b = pair
    try:
        d = abs(float(b) - float(a))
    except (TypeError, ValueError):
        return math.inf  # appeared or vanished
    return math.inf if math.isnan(d) else d


def reproduced(diffs: list[RecordDiff]) -> bool:
    return bool(diffs) and all(d.status == "identical" for d in diffs)


def attach_reproduction(summary: dict[str, Any], fresh: list[dict[str, Any]], reference: Reference) -> dict[str, Any]:
    """The summary with the comparison as data, its headline as the Markdown's first line (after the title) and
    its details (which records moved, which provenance differs) at the end."""
    diffs = compare(fresh, reference)
    line = headline(diffs, reference) + ("" if reproduced(diffs) or not reference.by_hash else
                                         " What moved, and the provenance that differs: end of this page.")
    md = summary["markdown"]
    if md.startswith("#"):
        title, _, rest = md.partition("\n")
        md = f"{title}\n\n{line}\n{rest}"
    else:
        md = f"{line}\n\n{md}"
    md = md.rstrip("\n") + "\n\n## Reproduction\n\n" + report(diffs, reference)
    return {**summary, "markdown": md,
            "reproduction": {"reference": str(reference.folder), "identical": reproduced(diffs),
                             "headline": headline(diffs, reference),
                             "moved": {d.run_name: {k: list(v) for k, v in d.moved.items()} for d in diffs
                                       if d.status == "moved"},
                             "missing": [d.run_name for d in diffs if d.status == "no reference"]}}


def save_reference(fresh_dir: str | Path, reference_dir: str | Path) -> int:
    """Make reference_dir hold exactly the records of fresh_dir (records only: no predictions or weights)."""
    import shutil

    from bench.util.io import atomic_write_bytes

    reference_dir = Path(reference_dir)
    folders = [f for f in store.iter_run_dirs(fresh_dir) if store.load_record(f / store.RECORD) is not None]
    if not folders:
        raise UserError(f"no records under {fresh_dir}: run the demo into it first")
    if (reference_dir / "runs").is_dir():
        shutil.rmtree(reference_dir / "runs")
    for f in folders:
        atomic_write_bytes(reference_dir / "runs" / f.name / store.RECORD, (f / store.RECORD).read_bytes())
    return len(folders)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results.compare", description=__doc__.splitlines()[0])
    parser.add_argument("fresh", help="results folder of the fresh run")
    parser.add_argument("reference", help="results folder of the committed records")
    parser.add_argument("--update", action="store_true", help="make REFERENCE hold FRESH's records instead")
    args = parser.parse_args(argv)
    try:
        if args.update:
            print(f"{save_reference(args.fresh, args.reference)} records written to {args.reference}/runs")
            return 0
        if not Path(args.reference).is_dir():
            raise UserError(f"reference folder not found: {args.reference}")
        fresh = store.load_records(args.fresh)
        if not fresh:
            raise UserError(f"no records under {args.fresh}: run the demo into it first")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reference = Reference.load(args.reference)
    diffs = compare(fresh, reference)
    print(report(diffs, reference), end="")
    return 0 if reproduced(diffs) else 1


if __name__ == "__main__":
    sys.exit(main())
