"""Records -> one pandas DataFrame, the only input of every table and plot.

A results folder is one set of runs: `<folder>/runs/<run>/record.json` (the runner's) and
`<folder>/external/<run>/record.json` (scored predictions). Sets are never mixed into one table: a folder
that is a set gives its own records (sets nested below it, such as results/demo under results, are left
out and named in the log); a folder holding several sets and none of its own is refused with their names.
Every record found is validated with
`bench.results.records.validate_record`; a broken record stops the report with an error naming the file,
because a silently skipped run would make a table look complete when it is not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.results.records import REGIMES, RunSpec
from bench.results.store import load_record
from bench.util.errors import UserError

COST_FIELDS = (
    "total_params", "trainable_params", "stored_params", "train_seconds", "images_seen",
    "infer_images_per_s", "peak_memory_mb", "device_hours",
)
# a row's record_kind: the record's "kind" where it has one ("external": bench.runs.external), else this
# (the runner's own records carry none)
REPRODUCED = "run here"
# one row per record; key columns are plain strings so groupby never drops a None checkpoint
COLUMNS = (
    "file", "spec_hash", "record_kind", "model", "checkpoint", "task", "task_version", "ann_sha256", "groups",
    "regime", "shots",
    "shots_label", "seed", "prompt_set", "split", "overrides", "variant", "metric", "primary", "value",
    *COST_FIELDS, "device",
)


RUN_FOLDERS = ("runs", "external")  # where a set keeps its records: bench.results.store, bench.runs.external


def set_root(record_file: Path) -> Path:
    """The results set a record belongs to: the folder above its runs/ or external/ folder."""
    run_dir = record_file.parent
    return run_dir.parent.parent if run_dir.parent.name in RUN_FOLDERS else run_dir.parent


def find_record_files(results_dir: str | Path) -> list[Path]:
    """The `record.json` files of the one results set `results_dir` names, in a stable (sorted) order."""
    root = Path(results_dir)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "not found"
        raise UserError(f"results folder {root} {what} (pass --results DIR, the folder the runner wrote)")
    by_set: dict[Path, list[Path]] = {}
    for path in sorted(root.glob("**/record.json")):
        by_set.setdefault(set_root(path), []).append(path)
    if root in by_set:
        others = sorted(str(s) for s in by_set if s != root)
        if others:
            from bench.util.logs import get_logger

            get_logger("reports").info("%s: its own %d records; other result sets below it left out: %s (pass one "
                                       "with --results)", root, len(by_set[root]), ", ".join(others))
        return by_set[root]
    if len(by_set) > 1:
        sets = ", ".join(f"{s} ({len(f)} records)" for s, f in sorted(by_set.items()))
        raise UserError(f"{root} holds {len(by_set)} result sets, which one table must not mix: {sets}. "
                        f"Pass one with --results, e.g. --results {min(by_set)}")
    return next(iter(by_set.values()), [])


def load_record_frame(results_dir: str | Path) -> pd.DataFrame:
    """Read and validate every record under `results_dir` -> DataFrame (one row per record)."""
    files = find_record_files(results_dir)
    records = []
    for path in files:
        records.append(load_record(path))  # validated; an invalid one is a UserError naming it
    return records_to_frame(records, [str(p) for p in files])


def variant_label(spec: RunSpec) -> str:
    """What sets a run apart beyond model/checkpoint/regime/shots: prompt set, split, overrides.

    Runs with different variants are different leaderboard rows (e.g. `fusion=late`)."""
    parts = []
    if spec.prompt_set != "plain":
        parts.append(f"prompts={spec.prompt_set}")
    if spec.split is not None:
        parts.append(f"split={spec.split}")
    parts += [f"{k}={_value_text(v)}" for k, v in spec.overrides.items()]
    return ", ".join(parts)


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def records_to_frame(records: Iterable[dict[str, Any]], sources: Iterable[str] | None = None) -> pd.DataFrame:
    """Flatten validated records: spec fields, task name/version/groups, primary metric, cost fields.

    Two records with the same spec hash are the same run written twice; that is an error naming
    both files rather than a silent double count."""
    records = list(records)
    sources = list(sources) if sources is not None else [f"record #{i}" for i in range(len(records))]
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for record, source in zip(records, sources):
        spec = RunSpec.from_dict(record["spec"])
        if spec.hash in seen:
            raise UserError(f"the same run ({spec.run_name}) has two records: {seen[spec.hash]} and {source}; "
                            "remove one of them")
        seen[spec.hash] = source
        task, metrics, cost = record["task"], record["metrics"], record["cost"]
        value = float(metrics["values"][metrics["primary"]])
        rows.append({
            "file": source,
            "spec_hash": spec.hash,
            "record_kind": str(record.get("kind") or REPRODUCED),
            "model": spec.model,
            "checkpoint": spec.checkpoint or "",
            "task": str(task["name"]),
            "task_version": int(task["version"]),
            "ann_sha256": str(task.get("ann_sha256") or ""),  # which annotation file was scored
            "groups": tuple(sorted(str(g) for g in task["groups"])),
            "regime": spec.regime,
            "shots": spec.shots,
            "shots_label": spec.shots_label,
            "seed": int(spec.seed),
            "prompt_set": spec.prompt_set,
            "split": spec.split or "",
            "overrides": dict(spec.overrides),
            "variant": variant_label(spec),
            "metric": str(task["metric"]),
            "primary": str(metrics["primary"]),
            "value": value,
            **{k: _number(cost[k]) for k in COST_FIELDS},
            "device": "" if cost["device"] is None else str(cost["device"]),  # null: not known
        })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["shots"] = df["shots"].astype(object)
    return df


def _number(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def shots_order(label: str) -> float:
    """Sort key for a shots label: 0 < 1 < ... < 'all' (the full training set)."""
    return math.inf if label == "all" else float(label)


def regime_order(regime: str) -> int:
    return REGIMES.index(regime) if regime in REGIMES else len(REGIMES)
