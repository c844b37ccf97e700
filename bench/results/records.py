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
MAX_SEED = 2**32 - 1  # numpy's RandomState bound (torch's is 2**64 - 1)
MAX_SHOTS = 1_000_000


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
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"seed {self.seed!r} is out of range: seeds are integers from 0 to {MAX_SEED} "
                            "(what torch, numpy and random all accept)")
        if self.shots is not None and (not _is_int(self.shots) or self.shots > MAX_SHOTS):
            raise UserError(f"shots {self.shots!r} is out of range: at most {MAX_SHOTS} per class, or 'all'")
        object.__setattr__(self, "overrides", dict(sorted(self.overrides.items())))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        if not isinstance(d, dict):
            raise UserError(f"a run spec is a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown run-spec fields {sorted(unknown)}; valid: {sorted(names)}")
        for name, (ok, want) in _SPEC_TYPES.items():
            if name in d and not ok(d[name]):
                raise UserError(f"run-spec field {name!r} must be {want}, got {d[name]!r}")
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


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_or_none(v: Any) -> bool:
    return v is None or isinstance(v, str)


# RunSpec field -> (check of its JSON value, what it must be): a record is user input once it is on disk
_SPEC_TYPES: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, str), "a string"),
    "task": (lambda v: isinstance(v, str), "a string"),
    "regime": (lambda v: isinstance(v, str), "a string"),
    "checkpoint": (_is_str_or_none, "a string or null"),
    "shots": (lambda v: v is None or _is_int(v), "an integer or null"),
    "seed": (_is_int, "an integer"),
    "prompt_set": (lambda v: isinstance(v, str), "a string"),
    "split": (_is_str_or_none, "a string or null"),
    "overrides": (lambda v: isinstance(v, dict), "a mapping"),
}


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


# TaskInfo field -> (check, what it must be)
_TASK_TYPES: dict[str, tuple[Any, str]] = {
    "name": (lambda v: isinstance(v, str), "a string"),
    "version": (_is_int, "an integer"),
    "groups": (lambda v: isinstance(v, list) and all(isinstance(g, str) for g in v), "a list of strings"),
    "metric": (lambda v: isinstance(v, str), "a string"),
    "split": (lambda v: isinstance(v, str), "a string"),
    "num_images": (_is_int, "an integer"),
    "ann_sha256": (_is_str_or_none, "a string or null"),
}


def validate_record(record: Any) -> None:
    """Raise ValueError naming the first missing or mistyped field; a valid record passes silently.
    A record on disk is user input (hand-edited, copied, from another version): every field the code reads
    is checked here, so no reader meets a wrong type."""
    if not isinstance(record, dict):
        raise ValueError(f"a record is a JSON object, got {type(record).__name__} ({str(record)[:40]})")
    version = record.get("schema_version")
    if _is_int(version) and version > SCHEMA_VERSION:
        raise ValueError(f"record schema_version {version} is newer than this glip-bench's {SCHEMA_VERSION}: it was "
                         "written by a newer version; upgrade glip-bench, or move the run folder away")
    if version != SCHEMA_VERSION:
        raise ValueError(f"record schema_version {version!r} != {SCHEMA_VERSION}")
    for key, typ in _required(Record).items():
        if not isinstance(record.get(key), typ) or isinstance(record.get(key), bool):
            raise ValueError(f"record field {key!r} missing or not {typ}")
    for key in ("model", "hparams", "training", "fewshot"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise ValueError(f"record field {key!r} must be a mapping or null, got {record[key]!r}")
    files = record.get("files")
    if files is not None and not (isinstance(files, list) and all(isinstance(f, str) and f and "/" not in f
                                                                    and f not in (".", "..") for f in files)):
        raise ValueError(f"record field 'files' must be a list of file names in the run folder, got {files!r}")
    try:
        spec = RunSpec.from_dict(record["spec"])
    except UserError as e:
        raise ValueError(f"record spec: {e}") from None
    if spec.hash != record["spec_hash"]:
        raise ValueError(f"spec_hash {record['spec_hash']} does not match the spec ({spec.hash})")
    for section, keys in (("task", _required(TaskInfo)), ("cost", _required(Cost)), ("provenance", PROVENANCE_KEYS)):
        missing = [k for k in keys if k not in record[section]]
        if missing:
            raise ValueError(f"record {section} lacks {missing}")
    for name, (ok, want) in _TASK_TYPES.items():
        if name in record["task"] and not ok(record["task"][name]):
            raise ValueError(f"record task.{name} must be {want}, got {record['task'][name]!r}")
    # another detector's scored predictions (kind "external", bench.runs.external) leave a cost they did not
    # declare blank (null); the runner's own records always measure theirs
    undeclared_ok = record.get("kind") == "external"
    for name, value in record["cost"].items():
        text = name in ("device", "peak_memory_kind")
        ok = isinstance(value, str) if text else isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok and not (value is None and (undeclared_ok or name not in _required(Cost))):
            raise ValueError(f"record cost.{name} must be {'a string' if text else 'a number'}, got {value!r}")
    metrics = record["metrics"]
    if not isinstance(metrics.get("primary"), str) or not isinstance(metrics.get("values"), dict):
        raise ValueError("record metrics need 'primary' (a name) and a 'values' mapping")
    if not isinstance(metrics.get("per_class", {}), dict):
        raise ValueError(f"record metrics.per_class must be a mapping, got {metrics['per_class']!r}")
    if metrics["primary"] not in metrics["values"]:
        raise ValueError(f"primary metric {metrics['primary']!r} not among {sorted(metrics['values'])}")
    for name, value in metrics["values"].items():
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or (not math.isnan(value) and not -1e-9 <= value <= 100 + 1e-9)):
            raise ValueError(f"metric {name}={value!r} is not a number on 0-100 (or NaN)")


def primary_value(record: dict[str, Any]) -> float:
    m = record["metrics"]
    return float(m["values"][m["primary"]])
