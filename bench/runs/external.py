"""Another detector's predictions scored under a task's protocol, kept as an external record.

A model the harness does not run still gets a leaderboard row: its predictions file (a COCO results
list, or the ODinW challenge's `{dataset: [...]}` / `{dataset: {seed: [...]}}` object) is checked
against the task's ground truth, cut to the task's per-image detection cap where the harness cuts its
own, scored with the task's metric and written as a run folder under `<results>/external/` whose record
says `"kind": "external"`. What the harness cannot know about such a model (parameters, speed, device)
is null in the record, not guessed.

    selections = select_entries(read_predictions_file(path), task, path)
    record = score_external(task, selections[0], model_name="gdino-t", source=path, results_dir="results")
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import store
from bench.results.records import Cost, Metrics, RunSpec
from bench.tasks.task import GROUNDING_FORMATS
from bench.util.errors import UserError, unknown_name

REQUIRED_COST = tuple(f.name for f in dataclasses.fields(Cost))  # every cost field of a record

KIND = "external"  # record["kind"] of a scored predictions file; runner records have no "kind" (reproduced)
FOLDER = "external"  # <results>/external/<run name>/: apart from runs/, so no harness run is ever overwritten
# spec.prompt_set of an external record: the prompts were the model's own, not one of the task's prompt
# sets; the harness refuses this name for its own runs, so an external spec never equals a harness spec
PROMPT_SET = "external"
# bare-pair metric names (`score --annotations`) -> bench.metrics names
BARE_METRICS = {"coco": "coco_bbox", "lvis": "lvis_bbox", "lvis-fixed": "lvis_fixed_ap", "flickr": "flickr_recall"}


@dataclass(frozen=True)
class Selection:
    """The predictions of one task (and few-shot seed) picked out of a predictions file."""

    predictions: list[Any]
    dataset: str | None = None  # the ODinW challenge key it came from; None for a plain results list
    seed: int | None = None  # the challenge's few-shot seed key; None when the file has no seeds

    def where(self, path: str | Path) -> str:
        """'FILE', or 'FILE, entry "Aquarium" seed 30': what an error message points at."""
        parts = [str(path)]
        if self.dataset is not None:
            parts.append(f"entry {self.dataset!r}" + ("" if self.seed is None else f" seed {self.seed}"))
        return ", ".join(parts)


# ------------------------------------------------------------------------------------------ reading
def read_predictions_file(path: str | Path) -> Any:
    """The parsed JSON of a predictions file (.json, or gzipped .json.gz); a clear error if it is not one."""
    import zlib

    from bench.util.io import read_user_bytes

    path = Path(path)
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    try:
        data = read_user_bytes(path, "predictions file")  # bounded: --max-read
        return store.parse_json(data)
    except (EOFError, OSError, zlib.error, ValueError) as err:
        raise UserError(f"predictions file {path} is not JSON ({type(err).__name__}: {err}); expected a COCO "
                        "results list or an ODinW challenge object {dataset: [...]}") from None


def normalise(name: str) -> str:
    """'AerialMaritimeDrone_large' and 'odinw-aerial-maritime-drone-large' -> comparable lowercase letters."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def dataset_names(task: Any) -> list[str]:
    """Names a challenge file may file this task's entry under: the task name, without its 'odinw-' prefix,
    and its data folder below the data set family ('EgoHands/generic')."""
    names = [task.name]
    if task.name.startswith("odinw-"):
        names.append(task.name.removeprefix("odinw-"))
    parts = Path(task.root).parts
    if len(parts) > 1:
        names.append("/".join(parts[1:]))
    return list(dict.fromkeys(names))


def select_entries(data: Any, task: Any | None, path: str | Path, *, dataset: str | None = None,
                   seed: int | None = None) -> list[Selection]:
    """The task's predictions in a parsed file: one Selection, or one per seed of a few-shot entry.

    dataset: the challenge key to take (default: the key whose name matches the task's; without a task it
    must be given); seed: take only this seed of a `{dataset: {seed: [...]}}` entry (default: every seed,
    one Selection each).
    """
    if isinstance(data, list):
        if dataset is not None:
            raise UserError(f"--dataset {dataset}: {path} is a plain results list, not an ODinW challenge "
                            "object with dataset keys; drop --dataset")
        return [Selection(data, None, seed)]
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a JSON {type(data).__name__}; expected a COCO results list "
                        "[{image_id, category_id, bbox, score}, ...] or an ODinW challenge object {dataset: [...]}")
    key = dataset if dataset is not None else _matching_key(data, task, path)
    if key not in data:
        raise unknown_name(f"dataset key in {path}", key, [str(k) for k in data])
    entry = data[key]
    if isinstance(entry, list):
        return [Selection(entry, key, seed)]
    if not isinstance(entry, dict):
        raise UserError(f"{path}, entry {key!r}: expected a list of predictions or {{seed: [...]}}, "
                        f"got a JSON {type(entry).__name__}")
    seeds: dict[int, list[Any]] = {}
    for s, preds in entry.items():
        if not str(s).lstrip("-").isdigit() or not isinstance(preds, list):
            raise UserError(f"{path}, entry {key!r}: key {s!r} is not a few-shot seed holding a list of "
                            "predictions; expected {seed: [...]} such as {\"3\": [...], \"30\": [...]}")
        seeds[int(s)] = preds
    if not seeds:
        raise UserError(f"{path}, entry {key!r} holds no seeds")
    if seed is not None:
        if seed not in seeds:
            raise unknown_name(f"seed of entry {key!r} in {path}", str(seed), [str(s) for s in seeds])
        return [Selection(seeds[seed], key, seed)]
    return [Selection(preds, key, s) for s, preds in sorted(seeds.items())]


def _matching_key(data: Mapping[str, Any], task: Any | None, path: str | Path) -> str:
    keys = ", ".join(repr(str(k)) for k in data) or "none"
    if task is None:
        raise UserError(f"{path} is an ODinW challenge object (keys: {keys}); pass --dataset KEY to pick the "
                        "entry to score")
    wanted = {normalise(n) for n in dataset_names(task)}
    found = [k for k in data if normalise(str(k)) in wanted]
    if len(found) == 1:
        return found[0]
    if found:
        raise UserError(f"{path}: several keys name task {task.name} ({', '.join(found)}); pass --dataset KEY")
    raise UserError(f"{path} has no entry for task {task.name} (looked for {', '.join(dataset_names(task))}); "
                    f"its keys: {keys}. Pass --dataset KEY to pick one")


# ----------------------------------------------------------------------------------------- protocol
def per_image_cap(task: Any) -> int | None:
    """The most detections per image the harness keeps for this task (None: no per-image cut: grounding,
    and Fixed AP, whose cap is per class over the split; bench.runs.predict.merges_capped)."""
    from bench.runs.predict import merges_capped

    if task.format in GROUNDING_FORMATS or not merges_capped(task):
        return None
    return int(task.detections_per_image)


def cap_per_image(predictions: Sequence[Mapping[str, Any]], cap: int | None) -> tuple[list[Any], int]:
    """(the detections kept, how many were dropped): each image's `cap` highest-scored ones, in input order.

    Ties keep the earlier detection. A file already within the cap (any file the harness wrote) comes
    back unchanged, so its numbers do not move.
    """
    if cap is None:
        return list(predictions), 0
    by_image: dict[int, list[int]] = defaultdict(list)
    for i, det in enumerate(predictions):
        by_image[int(det["image_id"])].append(i)
    drop: set[int] = set()
    for idx in by_image.values():
        if len(idx) > cap:
            ranked = sorted(idx, key=lambda i: -float(predictions[i]["score"]))  # stable: ties keep order
            drop.update(ranked[cap:])
    return [d for i, d in enumerate(predictions) if i not in drop], len(drop)


def checked_predictions(task: Any, dataset: Any, selection: Selection, source: str | Path) -> list[Any]:
    """The selection's detections validated against the task's ground truth (a malformed entry, an unknown
    image or category id is an error naming the file and the entry); grounding entries are checked by
    the metric itself."""
    from bench.metrics.coco import clean_detections

    if task.format in GROUNDING_FORMATS:
        return list(selection.predictions)
    try:
        return clean_detections(selection.predictions, dataset.coco)
    except UserError as err:
        raise UserError(f"{selection.where(source)}: {err}\n  {_what_fits(task, dataset.split, dataset.ann_file)}"
                        ) from None


def _what_fits(task: Any, split: str, ann: str | Path) -> str:
    """The second line of a bad-entry error: what the file's entries must match."""
    if task.format in GROUNDING_FORMATS:
        return f"each entry needs an image_id of task {task.name}'s split {split} and its phrases' boxes ({ann})"
    return f"each entry needs an image_id and a category_id of task {task.name}'s split {split} ({ann})"


def external_spec(task: Any, model_name: str, regime: str, shots: int | None, seed: int | None,
                  split: str) -> RunSpec:
    """The RunSpec an external record carries: the model name, the task's split, regime and shots as given."""
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise UserError(f"--model-name {model_name!r}: give a plain name such as grounding-dino-t (no '/')")
    return RunSpec(model=model_name, task=task.name, regime=regime, shots=shots, seed=seed or 0,
                   prompt_set=PROMPT_SET, split=split)


def external_dir(results_dir: str | Path, spec: RunSpec) -> Path:
    return Path(results_dir) / FOLDER / spec.run_name


# ------------------------------------------------------------------------------------------ scoring
def score_external(task: Any, selection: Selection, *, model_name: str, source: str | Path,
                   results_dir: str | Path, regime: str = "zero-shot", shots: int | None = 0,
                   split: str | None = None, data_root: str | Path | None = None,
                   metric_backend: str = "hotcoco", cost: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score one selection with the task's metric and write its run folder (predictions, then the record,
    each atomically); returns the record.

    cost: what the caller knows of the model's cost (REQUIRED_COST keys); every other cost field is null.
    """
    from bench.runs.scoring import score
    from bench.runs.stages import now
    from bench.util.provenance import file_sha256, provenance

    started, t0 = now(), time.perf_counter()
    split = split or (task.eval_split if regime == "zero-shot" else task.finetune_split)
    if split not in task.splits:
        raise unknown_name(f"split of task {task.name}", split, task.splits)
    if task.prompt_sets and PROMPT_SET in task.prompt_sets:
        raise UserError(f"task {task.name} ({task.file}) has a prompt set named {PROMPT_SET!r}, the name external "
                        "records use; rename that prompt set")
    unknown = sorted(set(cost or {}) - set(REQUIRED_COST))
    if unknown:
        raise unknown_name("cost field", unknown[0], REQUIRED_COST)
    spec = external_spec(task, model_name, regime, shots, selection.seed, split)
    dataset = task.load(split, data_root)
    cap = per_image_cap(task)
    preds, dropped = cap_per_image(checked_predictions(task, dataset, selection, source), cap)
    try:
        result = score(task, dataset, preds, metric_backend)
    except UserError as err:
        raise UserError(f"{selection.where(source)}: {err}\n  {_what_fits(task, split, task.ann_path(split, data_root))}"
                        ) from None
    ann = task.ann_path(split, data_root)
    record = {
        "schema_version": 1,
        "kind": KIND,
        "spec": spec.to_dict(),
        "spec_hash": spec.hash,
        "task": {"name": task.name, "version": task.version, "groups": list(task.groups), "metric": task.metric,
                 "split": split, "num_images": len(dataset), "ann_sha256": file_sha256(ann)},
        "metrics": dataclasses.asdict(Metrics.from_result(result)),
        "cost": {**dict.fromkeys(REQUIRED_COST), **(cost or {})},
        "provenance": provenance(
            seeds={"fewshot": spec.seed} if regime != "zero-shot" else {},
            ann_sha256={split: file_sha256(ann)}, checkpoint=None, prompt_set=PROMPT_SET,
            chunk_size=task.chunk_size, metric_backend=metric_backend,
            extra={"task_file_version": task.version, "detection_caps": {"per_image": cap, "dropped": dropped}},
            results_dir=results_dir,
        ),
        "external": {
            "model_name": model_name,
            "predictions_file": Path(source).name,
            "predictions_sha256": file_sha256(source),
            "dataset_key": selection.dataset,
            "seed_key": selection.seed,
            "num_predictions": len(selection.predictions),
            # what the task pins and this scoring applied; the prompts and thresholds were the model's own
            "protocol": {"metric": task.metric, "split": split, "detections_per_image": task.detections_per_image,
                         "per_image_cap_applied": cap, "dropped_by_cap": dropped,
                         "chunk_size": task.chunk_size, "regime": regime, "shots": shots},
        },
        "model": {"preset": None, "name": model_name, "overrides": {}, "checkpoint": None},
        "files": [store.PREDICTIONS],
        "started_at": started,
        "finished_at": now(),
        "wall_seconds": time.perf_counter() - t0,
    }
    folder = external_dir(results_dir, spec)
    store.clean_partial(folder)
    store.write_predictions(folder, preds)  # what was scored, so `score --run` on this folder agrees
    store.write_record(folder, record)
    return record


def score_pair_extra(annotations: str | Path, predictions: Sequence[Any], name: str, backend: str = "hotcoco",
                     where: str = "", options: dict[str, Any] | None = None) -> dict[str, Any]:
    """An extra metric (bench.metrics.extras) of a bare (ground truth file, predictions) pair, as records keep it.

    options: settings of the metric's `compute` (f1: score_threshold)."""
    from bench.metrics.extras import compute_extra
    from bench.runs.scoring import gc_paused
    from bench.util.io import read_json

    gt = read_json(annotations, "annotations file")
    try:
        with gc_paused():
            return compute_extra(name, gt, predictions, backend, options=options)
    except UserError as err:
        raise UserError(f"{where or 'predictions'} scored against {annotations}: {err}") from None


def score_pair(annotations: str | Path, predictions: Sequence[Any], metric: str, backend: str = "hotcoco",
               where: str = "") -> Any:
    """MetricResult of a bare (ground truth file, predictions) pair; `metric` is a BARE_METRICS name."""
    from bench.metrics import evaluate
    from bench.util.io import read_json

    if metric not in BARE_METRICS:
        raise unknown_name("--metric", metric, BARE_METRICS)
    from bench.runs.scoring import gc_paused

    gt = read_json(annotations, "annotations file")
    try:
        with gc_paused():  # the parsed file and the libraries' copies: short-lived objects by the million
            return evaluate(BARE_METRICS[metric], gt, predictions, backend=backend)
    except UserError as err:
        raise UserError(f"{where or 'predictions'} scored against {annotations}: {err}") from None
