"""Run specs and result records: the contract between the runner and the reports.

A `RunSpec` says what to run; its hash names the run's folder and record. A record is a plain JSON object
written atomically by the runner and read back by every report, so tables and plots depend on records
alone. Its schema is declared once, by the dataclasses below (`Record` and its sections): `build_record`
assembles one from them, `validate_record` checks a loaded one against them (fields without a default are
required). docs/formats.md, "The record", describes each field.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from bench.util.errors import UserError, unknown_name
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


@dataclass(frozen=True, kw_only=True)
class TaskInfo:
    """Which task and split a record scored (task file name and version, its annotation file's hash)."""

    name: str
    version: int
    groups: list[str]
    metric: str
    split: str
    num_images: int
    ann_sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class Metrics:
    """The metric values (0-100, NaN where not computable), its primary one, and per-class values."""

    primary: str
    values: dict[str, float]
    per_class: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    library: str = ""

    @classmethod
    def from_result(cls, result: Any) -> Metrics:
        """From a bench.metrics.MetricResult, as plain floats."""
        return cls(primary=result.primary, values={k: float(v) for k, v in result.values.items()},
                   per_class={k: float(v) for k, v in result.per_class.items()}, backend=result.backend,
                   library=getattr(result, "library", ""))


@dataclass(frozen=True, kw_only=True)
class Cost:
    """What the run cost: parameters, seconds, throughput, memory, the device."""

    total_params: int
    trainable_params: int
    stored_params: int
    train_seconds: float
    images_seen: int
    infer_images_per_s: float
    infer_seconds: float | None = None
    infer_model_seconds: float | None = None
    peak_memory_mb: float
    peak_memory_kind: str | None = None
    device: str
    device_hours: float


# the keys bench.util.provenance.provenance() always writes (it adds more, per run)
PROVENANCE_KEYS = (
    "git_commit", "git_dirty", "packages", "torch", "cuda", "seeds", "ann_sha256", "checkpoint_sha256",
    "prompt_set", "chunk_size", "metric_backend",
)


@dataclass(frozen=True, kw_only=True)
class Record:
    """One finished run, in the order its JSON object lists the fields."""

    schema_version: int = SCHEMA_VERSION
    spec: dict[str, Any]
    spec_hash: str
    task: TaskInfo
    metrics: Metrics
    cost: Cost
    provenance: dict[str, Any]
    model: dict[str, Any] | None = None
    hparams: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    fewshot: dict[str, Any] | None = None
    files: list[str] | None = None
    started_at: str
    finished_at: str
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_record(spec: RunSpec, **sections: Any) -> dict[str, Any]:
    """The JSON object of a finished run of `spec` (sections: the other fields of `Record`), validated."""
    record = Record(spec=spec.to_dict(), spec_hash=spec.hash, **sections).to_dict()
    validate_record(record)
    return record


def _json_type(hint: Any) -> type | tuple[type, ...]:
    """The JSON value type a field's annotation stands for."""
    if dataclasses.is_dataclass(hint):
        return dict
    origin = typing.get_origin(hint) or hint
    return (int, float) if origin is float else origin


def _required(cls: type) -> dict[str, type | tuple[type, ...]]:
    """The fields of a schema dataclass without a default, with their JSON types."""
    hints = typing.get_type_hints(cls)
    missing = (dataclasses.MISSING,)
    return {f.name: _json_type(hints[f.name]) for f in dataclasses.fields(cls)
            if f.default in missing and f.default_factory in missing}


def validate_record(record: dict[str, Any]) -> None:
    """Raise ValueError naming the first missing or mistyped field; a valid record passes silently."""
    if record.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"record schema_version {record.get('schema_version')!r} != {SCHEMA_VERSION}")
    for key, typ in _required(Record).items():
        if not isinstance(record.get(key), typ):
            raise ValueError(f"record field {key!r} missing or not {typ}")
    spec = RunSpec.from_dict(record["spec"])
    if spec.hash != record["spec_hash"]:
        raise ValueError(f"spec_hash {record['spec_hash']} does not match the spec ({spec.hash})")
    for section, keys in (("task", _required(TaskInfo)), ("cost", _required(Cost)), ("provenance", PROVENANCE_KEYS)):
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
