"""Hand-made, schema-valid records for report tests and examples (no model, no data set needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.results.records import SCHEMA_VERSION, RunSpec, validate_record
from bench.util.io import atomic_write_json


def make_record(*, model: str = "glip-synth", task: str = "synth-a", regime: str = "full-ft",
                shots: int | None = 5, seed: int = 0, value: float = 40.0, groups: tuple[str, ...] = ("synth",),
                primary: str = "AP", checkpoint: str | None = None, prompt_set: str = "plain",
                overrides: dict[str, Any] | None = None, task_version: int = 1,
                trainable_params: int = 1000, stored_params: int | None = None, train_seconds: float = 60.0,
                device: str = "cpu", device_hours: float | None = None, infer_images_per_s: float = 10.0,
                images_seen: int = 100) -> dict[str, Any]:
    """A record as the runner writes it, with the primary metric = `value`; validated before return."""
    if regime == "zero-shot":
        shots = 0
    spec = RunSpec(model=model, task=task, regime=regime, shots=shots, seed=seed, checkpoint=checkpoint,
                   prompt_set=prompt_set, overrides=dict(overrides or {}))
    record = {
        "schema_version": SCHEMA_VERSION,
        "spec": spec.to_dict(),
        "spec_hash": spec.hash,
        "task": {"name": task, "version": task_version, "groups": list(groups), "metric": "coco_bbox",
                 "split": "val", "num_images": 10, "ann_sha256": ""},
        "metrics": {"primary": primary, "values": {primary: float(value), "AP50": math.nan}, "per_class": {}},
        "cost": {"total_params": 10 * trainable_params, "trainable_params": trainable_params,
                 "stored_params": trainable_params if stored_params is None else stored_params,
                 "train_seconds": train_seconds, "images_seen": images_seen, "infer_images_per_s": infer_images_per_s,
                 "peak_memory_mb": 100.0, "device": device,
                 "device_hours": train_seconds / 3600 if device_hours is None else device_hours},
        "provenance": {"git_commit": "0" * 40, "git_dirty": False, "packages": {}, "torch": "2", "cuda": None,
                       "seeds": {"seed": seed}, "ann_sha256": "", "checkpoint_sha256": None,
                       "prompt_set": prompt_set, "chunk_size": None, "metric_backend": "hotcoco"},
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:01:00Z",
        "wall_seconds": 60.0,
    }
    validate_record(record)
    return record


def write_records(results_dir: str | Path, records: list[dict[str, Any]]) -> list[Path]:
    """Write records the way the runner lays them out: <results>/runs/<run_name>/record.json."""
    paths = []
    for record in records:
        spec = RunSpec.from_dict(record["spec"])
        path = Path(results_dir) / "runs" / spec.run_name / "record.json"
        atomic_write_json(path, record)
        paths.append(path)
    return paths
