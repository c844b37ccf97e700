"""Run specs and result records: the contract between the runner and the reports.

A `RunSpec` says what to run; its hash names the run's folder and record. A record is a plain JSON
object (schema below), written atomically by the runner and read back by every report, so tables
and plots depend on records alone.

Record layout (schema_version 1)::

    {
      "schema_version": 1,
      "spec": {RunSpec fields},             # the full spec, defaults filled in
      "spec_hash": "16 hex chars",
      "task": {"name", "version", "groups": [...], "metric", "split", "num_images", "ann_sha256"},
      "metrics": {"primary": "AP", "values": {"AP": 41.2, "AP50": ...},   # 0-100, NaN if not computable
                  "per_class": {"class name": AP, ...}},
      "cost": {"total_params", "trainable_params", "stored_params", "train_seconds", "images_seen",
               "infer_images_per_s", "peak_memory_mb", "device", "device_hours"},
      "provenance": {"git_commit", "git_dirty", "packages": {...}, "torch", "cuda", "seeds": {...},
                     "ann_sha256", "checkpoint_sha256", "prompt_set", "chunk_size", "metric_backend"},
      "started_at": ISO-8601 UTC, "finished_at": ISO-8601 UTC, "wall_seconds": float,
    }
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bench.util.errors import UserError
from bench.util.io import sha256_json

SCHEMA_VERSION = 1
REGIMES = ("zero-shot", "linear-probe", "prompt-tuning", "full-ft")


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One run: (model, checkpoint, task, regime, shots, seed, prompt set, overrides).

    shots: 0 for zero-shot, k for k-shot training, None for the full training set.
    overrides: model-config or regime overrides such as {"fusion": "late"} or {"lr": 0.01}.
    """

    model: str
    task: str
    regime: str
    checkpoint: str | None = None
    shots: int | None = 0
    seed: int = 0
    prompt_set: str = "plain"
    split: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            from bench.util.errors import unknown_name

            raise unknown_name("regime", self.regime, REGIMES)
        if self.regime == "zero-shot" and self.shots not in (0,):
            raise UserError(
                f"zero-shot runs take no shots (got shots={self.shots}); drop --shots or pick a training regime"
            )
        if self.regime != "zero-shot" and self.shots is not None and self.shots <= 0:
            raise UserError(f"regime {self.regime} needs shots >= 1 or 'all' (got {self.shots})")
        object.__setattr__(self, "overrides", dict(sorted(self.overrides.items())))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown run-spec fields {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**d)

    @property
    def hash(self) -> str:
        return sha256_json(self.to_dict())[:16]

    @property
    def shots_label(self) -> str:
        return "all" if self.shots is None else str(self.shots)

    @property
    def run_name(self) -> str:
        """A readable, unique folder name: task/regime/shots/seed + hash."""
        return f"{self.task}__{self.regime}__{self.shots_label}shot__seed{self.seed}__{self.hash}"


REQUIRED = {
    "spec": dict,
    "spec_hash": str,
    "task": dict,
    "metrics": dict,
    "cost": dict,
    "provenance": dict,
    "started_at": str,
    "finished_at": str,
    "wall_seconds": (int, float),
}
REQUIRED_TASK = ("name", "version", "groups", "metric", "split", "num_images")
REQUIRED_COST = (
    "total_params", "trainable_params", "stored_params", "train_seconds", "images_seen",
    "infer_images_per_s", "peak_memory_mb", "device", "device_hours",
)
REQUIRED_PROVENANCE = (
    "git_commit", "git_dirty", "packages", "torch", "cuda", "seeds", "ann_sha256", "checkpoint_sha256",
    "prompt_set", "chunk_size", "metric_backend",
)


def validate_record(record: dict[str, Any]) -> None:
    """Raise ValueError naming the first missing or mistyped field; a valid record passes silently."""
    if record.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"record schema_version {record.get('schema_version')!r} != {SCHEMA_VERSION}")
    for key, typ in REQUIRED.items():
        if not isinstance(record.get(key), typ):
            raise ValueError(f"record field {key!r} missing or not {typ}")
    spec = RunSpec.from_dict(record["spec"])
    if spec.hash != record["spec_hash"]:
        raise ValueError(f"spec_hash {record['spec_hash']} does not match the spec ({spec.hash})")
    for section, keys in (("task", REQUIRED_TASK), ("cost", REQUIRED_COST), ("provenance", REQUIRED_PROVENANCE)):
        missing = [k for k in keys if k not in record[section]]
        if missing:
            raise ValueError(f"record {section} lacks {missing}")
    metrics = record["metrics"]
    if "primary" not in metrics or not isinstance(metrics.get("values"), dict):
        raise ValueError("record metrics need 'primary' and a 'values' mapping")
    if metrics["primary"] not in metrics["values"]:
        raise ValueError(f"primary metric {metrics['primary']!r} not among {sorted(metrics['values'])}")
    for name, value in metrics["values"].items():
        if not isinstance(value, (int, float)) or (not math.isnan(value) and not -1e-9 <= value <= 100 + 1e-9):
            raise ValueError(f"metric {name}={value!r} is not a number on 0-100 (or NaN)")


def primary_value(record: dict[str, Any]) -> float:
    m = record["metrics"]
    return float(m["values"][m["primary"]])
