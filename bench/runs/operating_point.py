"""F1's operating point chosen on another split: a score threshold fixed on validation data, applied to test.

The best F1 over thresholds of the split being scored (bench.metrics.f1, F1max50) is an oracle's number:
it picks the threshold with the test labels. The honest operating point is fixed before the test split is
seen: the score that maximises F1 at IoU 0.5 on a validation run of the same model (its `score_F1max50`),
or a number the user chose. `f1_operating_point` reads it from a finished run and checks that the two runs
are the same model (spec equal but for task and split) on the same classes, and that the annotations differ.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.util.errors import UserError

SAME_MODEL = ("model", "checkpoint", "regime", "shots", "seed", "prompt_set", "overrides")  # spec fields that match


def f1_operating_point(names: list[str], record: dict[str, Any], dataset: Any, threshold: float | None,
                       from_run: str | Path | None, data_root: str | Path | None, backend: str
                       ) -> tuple[float, dict[str, Any]]:
    """(score threshold, where it came from) for f1 on the run of `record` (its loaded split: `dataset`)."""
    if "f1" not in names:
        raise UserError("--f1-threshold / --f1-threshold-from set f1's operating point: add f1 to --metric")
    if (threshold is None) == (from_run is None):
        raise UserError("give one of --f1-threshold T and --f1-threshold-from RUN, not both")
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
            raise UserError(f"--f1-threshold takes a score between 0 and 1 (got {threshold})")
        return float(threshold), {"given": float(threshold)}
    return threshold_from_run(Path(from_run), record, dataset, data_root, backend)


def threshold_from_run(folder: Path, record: dict[str, Any], dataset: Any, data_root: str | Path | None,
                       backend: str) -> tuple[float, dict[str, Any]]:
    """The best-F1 score (IoU 0.5) of the run in `folder`, after checking it may set `record`'s threshold."""
    from bench.results import store
    from bench.results.records import RunSpec
    from bench.runs.scoring import extra_metrics
    from bench.tasks.registry import get_task

    chosen = store.load_record(folder / store.RECORD)
    if chosen is None:
        raise UserError(f"--f1-threshold-from {folder}: not a run folder (no valid {store.RECORD})")
    differ = [k for k in SAME_MODEL if chosen["spec"].get(k) != record["spec"].get(k)]
    if differ:
        raise UserError(f"--f1-threshold-from {folder.name}: its model differs from the scored run's in "
                        f"{', '.join(differ)}; the threshold must come from the same model on another split")
    if chosen["task"]["ann_sha256"] == record["task"]["ann_sha256"]:
        raise UserError(f"--f1-threshold-from {folder.name}: it scored the same annotations as the run itself "
                        "(a threshold chosen on the test labels is the oracle F1max50); use a validation run")
    task = get_task(RunSpec.from_dict(chosen["spec"]).task)
    chosen_data = task.load(chosen["task"]["split"], data_root)
    if categories(chosen_data) != categories(dataset):
        raise UserError(f"--f1-threshold-from {folder.name}: its task's classes (ids and names) differ from the "
                        "scored run's")
    f1 = extra_metrics(["f1"], task, chosen_data, folder, backend)["f1"]["values"]
    score = f1["score_F1max50"]
    if math.isnan(score):
        raise UserError(f"--f1-threshold-from {folder.name}: that run has no detections or its split no objects, "
                        "so it sets no threshold")
    return float(score), {"run": folder.name, "task": chosen["task"]["name"], "split": chosen["task"]["split"],
                          "ann_sha256": chosen["task"]["ann_sha256"], "value": "score_F1max50",
                          "F1max50": f1["F1max50"]}


def categories(dataset: Any) -> list[tuple[int, str]]:
    """(id, name) of every class of a loaded detection split, in id order."""
    gt = getattr(dataset, "coco", dataset)
    return sorted((int(c["id"]), str(c["name"])) for c in gt["categories"])
