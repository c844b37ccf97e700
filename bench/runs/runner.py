"""Run specs -> (training) -> raw predictions (saved) -> metrics -> one record per run; grids, resume, shards.

    specs = expand_grid(models=["glip-synth"], tasks="synth-shapes", regimes=["zero-shot", "full-ft"],
                        shots=[1, 5], seeds=[3, 30], overrides={"max_epochs": 2})
    validate_specs(specs, data_root)                 # every bad spec fails here, before any compute
    records = run_grid(specs, data_root, results_dir, device="cpu")

A run's folder is <results>/runs/<spec.run_name>/ (bench/store.py). A finished run (valid record with
the same spec hash) is skipped when a sweep is rerun; anything else is redone from scratch, so a sweep
killed at any point and rerun ends with the same records. `--shard i/N` takes every N-th spec of the
grid sorted by spec hash, so N jobs can share one results folder without overlap.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.results import store
from bench.results.records import RunSpec
from bench.runs.regimes import get_regime, regime_names, resolve_hparams
from bench.util.errors import UserError, unknown_name
from bench.util.logs import get_logger, progress

log = get_logger("runner")
DEFAULT_BACKEND = "faster"
INIT_SEED = 0  # torch seed for building models (their random init, where no checkpoint sets the weights)
SHARD_PIECE = 32  # most images per inference shard file under torchrun (bench.dist.inference)


# ---------------------------------------------------------------------------------------- specs
def model_fields() -> set[str]:
    """GLIPConfig fields a run may override (`--set fusion=late`)."""
    from glip.config import GLIPConfig

    return {f.name for f in dataclasses.fields(GLIPConfig)} - {"name"}


def _unknown_override(key: str, regimes: Sequence[str]) -> UserError:
    from bench.util.errors import closest

    settings = sorted({k for r in regimes for k in get_regime(r).defaults})
    near = closest(key, [*settings, *model_fields()])
    hint = f" Did you mean {near[0]!r}?" if near else ""
    return UserError(
        f"unknown override key {key!r}.{hint}\n  settings of {', '.join(regimes)}: {', '.join(settings)}\n"
        f"  model (GLIPConfig) fields: {', '.join(sorted(model_fields()))}"
    )


def split_overrides(overrides: dict[str, Any], regime: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, regime overrides), told apart by name; unknown key -> UserError listing valid ones."""
    model_keys, reg = model_fields(), get_regime(regime)
    model, rest = {}, {}
    for key, value in overrides.items():
        if key in model_keys and key in reg.defaults:
            raise UserError(f"override {key!r} is both a model field and a {regime} setting; rename one")
        if key in model_keys:
            model[key] = value
        elif key in reg.defaults:
            rest[key] = value
        else:
            raise _unknown_override(key, [regime])
    return model, rest


def overrides_for(overrides: dict[str, Any], regime: str, regimes: Sequence[str]) -> dict[str, Any]:
    """The overrides that apply to `regime` in a grid over `regimes`: model fields, and settings this regime has.

    A setting only some regimes have (max_epochs for the training ones) is dropped for the others, so a
    zero-shot run's spec (and hash) does not depend on training budgets; a key no regime of the grid and
    no model field knows is an error.
    """
    model_keys = model_fields()
    out = {}
    for key, value in overrides.items():
        if key in model_keys or key in get_regime(regime).defaults:
            out[key] = value
        elif not any(key in get_regime(r).defaults for r in regimes):
            raise _unknown_override(key, regimes)
    return out


def model_config(preset: str, model_overrides: dict[str, Any]) -> Any:
    """The GLIPConfig of a preset with overrides (lists become tuples); bad name or value -> UserError."""
    from glip.config import GLIPConfig, get_preset

    fields = {f.name: f for f in dataclasses.fields(GLIPConfig)}
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in model_overrides.items() if k in fields}
    try:
        return get_preset(preset, **fixed)
    except KeyError as e:
        raise UserError(str(e).strip("'\"")) from None
    except (TypeError, ValueError) as e:
        raise UserError(f"model {preset} with overrides {model_overrides}: {e}") from None


def expand_grid(
    *, models: Sequence[str], tasks: str | Sequence[str], regimes: Sequence[str], shots: Sequence[int | None] | None,
    seeds: Sequence[int] | None, prompt_set: str = "plain", overrides: dict[str, Any] | None = None,
    checkpoint: str | None = None,
) -> list[RunSpec]:
    """The cross product as RunSpecs with defaults filled in (split = the task's eval or fine-tune split).

    zero-shot takes no shots or seeds (one run per model x task); training regimes take shots x seeds
    (None as a shot = the full training set). shots/seeds None = the official 1,3,5,10 x 3,30,300.
    """
    from bench.tasks.fewshot import SEEDS, SHOTS
    from bench.tasks.registry import get_task, resolve_tasks

    names = [t.name for t in resolve_tasks(tasks)] if isinstance(tasks, str) else [get_task(t).name for t in tasks]
    for r in regimes:
        get_regime(r)
    if "zero-shot" in regimes and len(regimes) == 1 and (shots or seeds):
        raise UserError("zero-shot runs take no --shots or --seeds; drop them or add a training regime")
    specs = []
    for model in models:
        for name in dict.fromkeys(names):
            task = get_task(name)
            for regime in regimes:
                if regime == "zero-shot":
                    grid = [(0, 0)]
                    split = task.eval_split
                else:
                    grid = [(k, s) for k in (shots or SHOTS) for s in (seeds or SEEDS)]
                    split = task.finetune_split
                for k, s in grid:
                    specs.append(RunSpec(model=model, task=name, regime=regime, checkpoint=checkpoint, shots=k,
                                         seed=s, prompt_set=prompt_set, split=split,
                                         overrides=overrides_for(overrides or {}, regime, regimes)))
    return list({s.hash: s for s in specs}.values())


def train_val_splits(task: Any) -> tuple[str, str]:
    """(train split, val split for early stopping) of a task."""
    if "train" not in task.splits:
        raise UserError(f"task {task.name} has no train split ({task.file}); it can only be run zero-shot")
    return "train", ("val" if "val" in task.splits else task.eval_split)


def validate_specs(specs: Iterable[RunSpec], data_root: str | Path | None = None,
                   text_encoder: str | Path | None = None) -> None:
    """Fail before any compute, with a message saying what to change, for any spec that cannot run."""
    from bench.tasks.fewshot import check_shots
    from bench.tasks.registry import get_task

    for spec in specs:
        regime = get_regime(spec.regime)
        task = get_task(spec.task)
        model_over, reg_over = split_overrides(spec.overrides, spec.regime)
        resolve_hparams(regime, spec.shots, reg_over)
        cfg = model_config(spec.model, model_over)
        if cfg.vocab_words is None and text_encoder is None:
            raise UserError(f"model {spec.model} uses bert-base-uncased: pass --text-encoder DIR (a local "
                            "bert-base-uncased directory; `huggingface-cli download bert-base-uncased --local-dir DIR` "
                            "on a machine with internet)")
        if text_encoder is not None and not Path(text_encoder).is_dir():
            raise UserError(f"--text-encoder {text_encoder}: no such directory")
        if spec.checkpoint is not None and not Path(spec.checkpoint).is_file():
            raise UserError(f"checkpoint not found: {spec.checkpoint}")
        if task.prompt_sets and spec.prompt_set not in task.prompt_sets:
            raise unknown_name(f"prompt set of task {task.name}", spec.prompt_set, task.prompt_sets)
        splits = [spec.split or task.eval_split]
        if regime.trains:
            if task.format == "mdetr_flickr":
                raise UserError(f"task {task.name} is a grounding task: only zero-shot runs are supported on it")
            if task.chunk_size is not None:
                raise UserError(f"task {task.name} needs chunked prompts ({task.chunk_size} classes per prompt); "
                                f"training regimes need all classes in one caption: run it zero-shot")
            splits += list(train_val_splits(task))
        for split in dict.fromkeys(splits):
            if split not in task.splits:
                raise unknown_name(f"split of task {task.name}", split, task.splits)
            if not task.data_present(data_root, split):
                raise UserError(f"task {task.name}: the data of split {split!r} is missing ({task.ann_path(split, data_root)} "
                                f"or {task.images_path(split, data_root)}); pass --data-root or get it: {task.source}")
        if regime.trains:
            if spec.seed < 0:
                raise UserError(f"--seeds {spec.seed}: a few-shot seed must be >= 0")
            check_shots(task, train_val_splits(task)[0], spec.shots, spec.seed, data_root)


def shard_specs(specs: Sequence[RunSpec], index: int, count: int) -> list[RunSpec]:
    """The index-th (0-based) of `count` disjoint parts of a grid: every count-th spec in spec-hash order."""
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {index}/{count}: need 0 <= i < N (i counts from 0)")
    return sorted(specs, key=lambda s: s.hash)[index::count]


# ------------------------------------------------------------------------------------- models
class ModelCache:
    """One built model per (preset, checkpoint, model overrides), reset to its loaded weights for every run."""

    def __init__(self, device: str, text_encoder: str | Path | None = None) -> None:
        self.device = device
        self.text_encoder = text_encoder
        self.key: tuple | None = None
        self.model: Any = None
        self.state: dict[str, Any] = {}
        self.requires_grad: dict[str, bool] = {}

    def get(self, spec: RunSpec, model_overrides: dict[str, Any]) -> Any:
        import torch

        key = (spec.model, spec.checkpoint, repr(sorted(model_overrides.items())))
        if key != self.key:
            gc.unfreeze()  # the previous model's objects may sit in the permanent generation (freeze_gc_heap)
            self.model = None  # free the previous one first
            cfg = model_config(spec.model, model_overrides)
            self.model = build_model(cfg, spec.checkpoint, self.text_encoder).to(self.device)
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.requires_grad = {n: p.requires_grad for n, p in self.model.named_parameters()}
            self.key = key
            freeze_gc_heap()
        else:
            with torch.no_grad():
                self.model.load_state_dict(self.state, strict=True)
            for n, p in self.model.named_parameters():
                p.requires_grad_(self.requires_grad[n])
        self.model.eval()
        return self.model


def build_model(cfg: Any, checkpoint: str | None, text_encoder: str | Path | None = None) -> Any:
    """A GLIP from a config, with weights from `checkpoint` (official .pth or our safetensors) if given.

    text_encoder: a local bert-base-uncased directory, for the presets without a built-in vocabulary
    (glip-t, glip-l); it is not part of the run spec, since a checkpoint carries BERT's weights too.

    The random init (every weight when there is no checkpoint) comes from a fixed seed, so one spec gives
    one base model in every process and a run's adapter can be re-applied to it later; the caller's
    global RNG state is left as it was.
    """
    import torch

    import glip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        try:
            return glip.from_pretrained(cfg, checkpoint=checkpoint, text_encoder=text_encoder)
        except (ValueError, FileNotFoundError, KeyError) as e:  # glip's loaders name the file and the fix
            raise UserError(str(e)) from e


# -------------------------------------------------------------------------------- inference
def prompt_chunks(task: Any, dataset: Any, tokenizer: Any, prompt_set: str) -> list[tuple[Any, list[int]]]:
    """The task's class prompt: (glip PromptChunk, data-set category id of each of its phrases) per chunk."""
    from bench.tasks.prompts import task_prompt_chunks

    return task_prompt_chunks(task, dataset, tokenizer, prompt_set)


def predict_detection(model: Any, dataset: Any, chunks: Sequence[tuple[Any, list[int]]], cap: int, batch_size: int,
                      device: str, num_workers: int | None = None, timer: Any = None,
                      image_ids: Sequence[int] | None = None, amp: bool = False, merge_cap: bool = True
                      ) -> tuple[list[dict[str, Any]], float]:
    """COCO-format detections of `image_ids` (default every image; CONTRACTS.md 5) and the seconds it took.

    Chunked prompts: one pass of fusion + head per chunk on cached image features, phrase labels mapped
    to category ids, the chunks' detections merged by score under the task's per-image cap (which is also
    the postprocessor's per-chunk cap, official DETECTIONS_PER_IMG); merge_cap=False (`merges_capped`)
    keeps every chunk's detections. amp: hp "infer_amp" (`inference_autocast`).
    """
    from bench.models.glip import predict_detection as engine

    return engine(model, dataset, [ch for ch, _ in chunks], cap, batch_size, device, num_workers=num_workers,
                  timer=timer, image_ids=image_ids, autocast_dtype=inference_autocast(amp, device),
                  merge_cap=merge_cap)


def merges_capped(task: Any) -> bool:
    """Whether the merged chunks' detections are cut to detections_per_image again per image.

    Not for Fixed AP: the official chunked LVIS evaluation hands every chunk's (capped) detections to the
    Fixed-AP evaluator, which caps per class over the split, not per image (tasks/README.md).
    """
    return task.metric != "lvis_fixed_ap"


def detection_caps(task: Any) -> dict[str, int | None] | None:
    """The caps a detection run applied, for its record (None for grounding)."""
    if task.format == "mdetr_flickr":
        return None
    merged = task.detections_per_image if merges_capped(task) else None
    return {"per_chunk": task.detections_per_image, "per_image_after_merge": merged}


def predict_grounding(model: Any, dataset: Any, device: str, num_workers: int | None = None, timer: Any = None,
                      sample_ids: Sequence[int] | None = None, amp: bool = False
                      ) -> tuple[list[dict[str, Any]], float]:
    """Flickr-style predictions (per entry, per phrase, boxes by score), one image per pass (bench.models.glip)."""
    from bench.models.glip import predict_grounding as engine

    return engine(model, dataset, device, num_workers=num_workers, timer=timer, sample_ids=sample_ids,
                  autocast_dtype=inference_autocast(amp, device))


def inference_autocast(amp: bool, device: str) -> Any:
    """The autocast dtype of a run's inference: bfloat16 when hp "infer_amp" is on and the device is CUDA
    (like training's "amp", ignored on CPU), else None (the model's own float32)."""
    import torch

    return torch.bfloat16 if amp and str(device).startswith("cuda") else None


def piece_size(num_keys: int) -> int:
    """Images (grounding: entries) per inference shard under torchrun: 32, or fewer so a split has >= 8 pieces.

    Depends on the split only, not on the number of processes, so a crashed run can be resumed with any
    number of them and keep its finished shards (bench.dist.inference).
    """
    return max(1, min(SHARD_PIECE, math.ceil(num_keys / 8)))


def train_is_data_parallel() -> bool:
    """True when bench.runs.train.train trains data-parallel under a process group (DDP; its `eval_ranks` option)."""
    import inspect

    from bench.runs.train import train

    return "eval_ranks" in inspect.signature(train).parameters


def check_world(specs: Iterable[RunSpec]) -> None:
    """Under torchrun (world size > 1) only what can run data-parallel: zero-shot inference (Issue 8), and
    training where bench.runs.train supports it (every rank then holds the same trained weights)."""
    from bench.dist import comm as dist

    world = dist.world_size()
    if world <= 1:
        return
    trains = sorted({s.regime for s in specs if get_regime(s.regime).trains})
    if trains and not train_is_data_parallel():
        raise UserError(f"{', '.join(trains)}: training runs cannot run under torchrun ({world} processes) yet; "
                        f"only zero-shot inference is data-parallel. Run training regimes in one process")
    from bench.dist import ddp

    for s in specs:  # the global batch is split over the processes: refuse an uneven split before any compute
        if get_regime(s.regime).trains:
            _, reg_over = split_overrides(s.overrides, s.regime)
            ddp.check_batch_size(resolve_hparams(get_regime(s.regime), s.shots, reg_over)["batch_size"], world)


def ground_truth(task: Any, dataset: Any) -> Any:
    return dataset.entities if task.format == "mdetr_flickr" else dataset.coco


def freeze_gc_heap() -> None:
    """Move every object alive now (torch, transformers, the model: ~400k) to the collector's permanent
    generation, so the full collections that inference's bursts of detection dicts trigger walk only what
    was made since (about 0.2 s each otherwise; issue #9). Called once per model build."""
    gc.collect()
    gc.freeze()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (restored after), for bursts of short-lived objects.

    Scoring parses the predictions and the metric library copies them: a few containers per detection,
    all freed by reference counting when scoring returns. With the collector on, the ones alive at a
    collection get promoted, and enough promotions trigger a full collection, which walks every object
    of the process (torch, transformers: ~400k, ~0.2 s each; about one per zero-shot pass over the
    synthetic suite, issue #9). Off, nothing is promoted, so that work is skipped rather than postponed;
    the few reference cycles made meanwhile (< 100 objects in a whole pass over that suite) are collected
    later as usual. Process-wide: meant for single-threaded stretches such as scoring.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def score(task: Any, dataset: Any, predictions: list[dict[str, Any]], backend: str) -> Any:
    """MetricResult of predictions that went through JSON (so a rescore from the file gives the same numbers)."""
    import orjson

    from bench.metrics import evaluate

    as_saved = orjson.loads(orjson.dumps(predictions))  # store.write_predictions' encoding
    return evaluate(task.metric, ground_truth(task, dataset), as_saved, backend=backend)


def score_saved(task: Any, dataset: Any, folder: str | Path, backend: str) -> Any:
    """MetricResult of a run's saved predictions file: the numbers a rescore gives, by construction.

    Reading the file back (gunzip + parse) replaces `score`'s JSON round trip, so the predictions are
    encoded once per run, not twice.
    """
    from bench.metrics import evaluate

    with gc_paused():
        preds = store.read_predictions(folder)
        try:
            return evaluate(task.metric, ground_truth(task, dataset), preds, backend=backend)
        except UserError as err:  # a bad entry: name the run whose file holds it
            raise UserError(f"run {Path(folder).name} ({folder}): {err}") from None


# ------------------------------------------------------------------------------------ one run
def _peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def run_one(
    spec: RunSpec, *, data_root: str | Path | None = None, results_dir: str | Path = "results",
    device: str = "cpu", metric_backend: str = DEFAULT_BACKEND, cache: ModelCache | None = None,
    num_workers: int | None = None, save_adapter: bool = True,
) -> dict[str, Any] | None:
    """Train (per the regime), predict the eval split, save predictions, score, write the record last.

    num_workers: image-decoding worker processes for inference (None: bench.models.glip.auto_workers; they do
    not change any number).
    save_adapter: keep a training run's stored tensors (store.ADAPTER; full-ft: every weight).
    Under torchrun every process calls this: each predicts its shards of the split (bench.dist.inference),
    rank 0 merges, scores and writes the record and returns it; the other ranks return None.
    """
    import torch

    from bench.data.training import DetectionTrainSet
    from bench.dist import comm as dist
    from bench.dist.inference import SHARD_DIR, predict_sharded, remove_shards
    from bench.runs.train import train
    from bench.tasks.fewshot import fewshot_subset
    from bench.tasks.registry import get_task
    from bench.util.provenance import device_name, file_sha256, provenance

    check_world([spec])
    started, t0 = now(), time.perf_counter()
    task, regime = get_task(spec.task), get_regime(spec.regime)
    model_over, reg_over = split_overrides(spec.overrides, spec.regime)
    hp = resolve_hparams(regime, spec.shots, reg_over)
    folder = store.run_dir(results_dir, spec)
    store.clean_partial(folder)
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    model = (cache or ModelCache(device)).get(spec, model_over)
    groups = model.parameter_groups()
    split = spec.split or task.eval_split
    eval_set = task.load(split, data_root)
    grounding = task.format == "mdetr_flickr"
    chunks = None if grounding else prompt_chunks(task, eval_set, model.tokenizer, spec.prompt_set)
    size_div = model.config.size_divisibility

    def predict(dataset: Any, timer: Any = None) -> tuple[list[dict[str, Any]], float]:
        if grounding:
            return predict_grounding(model, dataset, device, num_workers, timer, amp=hp["infer_amp"])
        return predict_detection(model, dataset, chunks, task.detections_per_image, hp["infer_batch_size"], device,
                                 num_workers, timer, amp=hp["infer_amp"], merge_cap=merges_capped(task))

    trained: dict[str, Any] | None = None
    fewshot: dict[str, Any] | None = None
    trainable: list[str] = []
    if regime.trains:
        train_split, val_split = train_val_splits(task)
        tr = fewshot_subset(task, train_split, spec.shots, spec.seed, data_root, which="train")
        va = fewshot_subset(task, val_split, hp["val_shots"], spec.seed, data_root, which="val")
        if len(chunks) != 1:
            raise UserError(f"task {task.name}: the class prompt needs {len(chunks)} captions; training needs one")
        ch = chunks[0][0]
        class_map = ch.positive_map[torch.tensor(ch.phrase_indices).argsort()]  # rows in category order
        dataset = DetectionTrainSet(tr.dataset, ch.caption, class_map, model.preprocess,
                                    flip_prob=model.config.flip_prob, seed=spec.seed)

        def val_metric(m: Any) -> float:
            preds, _ = predict(va.dataset)
            result = score(task, va.dataset, preds, metric_backend)
            return float(result.values[result.primary])

        trainable = regime.trainable_names(groups)
        res = train(model, dataset, trainable=trainable, hp=hp, device=device, seed=spec.seed, evaluate=val_metric,
                    eval_modules=regime.eval_modules, size_divisibility=size_div)
        trained = res.to_dict()
        fewshot = {"train_image_ids": sorted(tr.image_ids), "train_source": tr.source,
                   "val_split": val_split, "val_image_ids": sorted(va.image_ids), "val_source": va.source,
                   "train_images_with_boxes": len(dataset)}
    from bench.models.glip import ModelTimer

    timer = ModelTimer()
    world = dist.world_size()
    if world > 1 or (folder / SHARD_DIR).is_dir():  # data-parallel, or resuming a crashed data-parallel run
        keys = [s.id for s in eval_set.samples] if grounding else list(eval_set.image_ids)

        def part(ids: list[int]) -> list[dict[str, Any]]:
            if grounding:
                return predict_grounding(model, eval_set, device, num_workers, timer, sample_ids=ids,
                                         amp=hp["infer_amp"])[0]
            return predict_detection(model, eval_set, chunks, task.detections_per_image, hp["infer_batch_size"],
                                     device, num_workers, timer, image_ids=ids, amp=hp["infer_amp"],
                                     merge_cap=merges_capped(task))[0]

        trained_digest = _weights_digest(model, regime.stored_names(groups)) if regime.trains else None
        sharded = predict_sharded(part, keys, folder, piece_size=piece_size(len(keys)),
                                  fingerprint=f"{spec.hash}:{file_sha256(spec.checkpoint)}:{trained_digest}")
        if sharded.predictions is None:  # not rank 0: its shards are on disk, rank 0 merges and scores
            return None
        preds, infer_seconds = sharded.predictions, sharded.seconds
    else:
        preds, infer_seconds = predict(eval_set, timer)
    n_images = len(eval_set)
    store.write_predictions(folder, preds)
    if regime.trains and save_adapter:
        params = dict(model.named_parameters())
        store.write_adapter(folder, {n: params[n] for n in regime.stored_names(groups)})
    result = score_saved(task, eval_set, folder, metric_backend)

    numel = {n: p.numel() for n, p in model.named_parameters()}
    train_seconds = trained["train_seconds"] if trained else 0.0
    ann = task.ann_path(split, data_root)
    record = {
        "schema_version": 1,
        "spec": spec.to_dict(),
        "spec_hash": spec.hash,
        "task": {"name": task.name, "version": task.version, "groups": list(task.groups), "metric": task.metric,
                 "split": split, "num_images": n_images, "ann_sha256": file_sha256(ann)},
        "metrics": metrics_section(result),
        "cost": {
            "total_params": sum(numel.values()),
            "trainable_params": sum(numel[n] for n in trainable),
            "stored_params": sum(numel[n] for n in regime.stored_names(groups)),
            "train_seconds": train_seconds,
            "images_seen": trained["images_seen"] if trained else 0,
            "infer_images_per_s": n_images / infer_seconds if infer_seconds > 0 else 0.0,
            "infer_seconds": infer_seconds,
            "infer_model_seconds": timer.model_seconds,
            "peak_memory_mb": _peak_memory_mb(device),
            "peak_memory_kind": "cuda max allocated" if str(device).startswith("cuda") else "process peak RSS",
            "device": device_name(device),
            "device_hours": (train_seconds + infer_seconds) * world / 3600.0,  # every process holds a device
        },
        "provenance": provenance(
            seeds=run_seeds(spec),
            ann_sha256={s: file_sha256(task.ann_path(s, data_root)) for s in dict.fromkeys(
                [split, *(train_val_splits(task) if regime.trains else ())])},
            checkpoint=spec.checkpoint, prompt_set=spec.prompt_set,
            chunk_size=task.chunk_size, metric_backend=metric_backend,
            extra={"task_file_version": task.version, "num_prompt_chunks": None if chunks is None else len(chunks),
                   "captions": None if chunks is None else [c.caption for c, _ in chunks],
                   "world_size": world, "detection_caps": detection_caps(task)},
            results_dir=results_dir,
        ),
        "model": {"preset": spec.model, "overrides": model_over, "checkpoint": spec.checkpoint},
        "hparams": hp,
        "training": trained,
        "fewshot": fewshot,
        "files": [store.PREDICTIONS, *([store.ADAPTER] if regime.trains and save_adapter else [])],
        "started_at": started,
        "finished_at": now(),
        "wall_seconds": time.perf_counter() - t0,
    }
    store.write_record(folder, record)  # last: its presence marks the run finished
    remove_shards(folder)  # merged into the predictions file
    log.info("%s: %s = %.2f", spec.run_name, result.primary, result.values[result.primary])
    return record


def run_seeds(spec: RunSpec) -> dict[str, int]:
    """The seeds a run's numbers depend on: its own, and the pretraining seed of its checkpoint when known."""
    from bench.util.provenance import checkpoint_pretrain_seed

    pretrain_seed = checkpoint_pretrain_seed(spec.checkpoint)
    return {"fewshot": spec.seed, "train": spec.seed, **({} if pretrain_seed is None else {"pretrain": pretrain_seed})}


def _weights_digest(model: Any, names: Iterable[str]) -> str:
    """sha256 of the named parameters' bytes: shards predicted by other trained weights are not reused."""
    import hashlib

    params = dict(model.named_parameters())
    h = hashlib.sha256()
    for n in sorted(names):
        h.update(n.encode())
        h.update(params[n].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------- grids
def run_grid(
    specs: Sequence[RunSpec], data_root: str | Path | None, results_dir: str | Path, device: str = "cpu", *,
    rescore: bool = False, shard: tuple[int, int] | None = None, metric_backend: str = DEFAULT_BACKEND,
    validate: bool = True, num_workers: int | None = None, save_adapter: bool = True,
    text_encoder: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Run (or skip, when finished) every spec of this shard; returns the records in spec-hash order.

    rescore: recompute the metrics of finished runs from their saved predictions (no inference), and
    refuse specs that have not run yet.
    Under torchrun every process walks the same list (rank 0 decides what is finished and tells the
    others), each run's split is predicted data-parallel, and only rank 0 gets the records (the other
    ranks get an empty list).
    """
    from bench.dist import comm as dist

    specs = shard_specs(specs, *shard) if shard else sorted(specs, key=lambda s: s.hash)
    if validate:
        validate_specs(specs, data_root, text_encoder=text_encoder)
    main = dist.is_main()
    if rescore:
        missing = [s.run_name for s in specs if store.finished_record(results_dir, s) is None]
        if missing:
            raise UserError(f"--rescore needs finished runs; {len(missing)} have no valid record with its predictions, "
                            f"e.g. {missing[0]}")
        # no inference: rank 0 rescores, the others only wait for it
        records = [rescore_run(store.run_dir(results_dir, s), data_root, metric_backend) for s in specs] if main else []
        dist.barrier()
        return records
    check_world(specs)
    cache = ModelCache(device, text_encoder)
    records: dict[str, dict[str, Any]] = {}
    if main:  # what is done and what is not, in two lines instead of one per run
        why: list[str] = []
        finished = sum(store.finished_record(results_dir, s, why) is not None for s in specs)
        log.info("%d of %d runs already finished (reused), %d to run", finished, len(specs), len(specs) - finished)
        if store.unfinished_summary(why, len(specs)):
            log.info("%s", store.unfinished_summary(why, len(specs)))
    busy = list(specs)
    # first pass: every run nobody else holds; second: wait for the runs another process was computing
    for wait in (False, True):
        walk, busy = busy, []
        bar = walk
        if main and not wait:
            bar = progress(walk, desc="runs" if shard is None else f"runs {shard[0] + 1}/{shard[1]}", total=len(walk),
                           leave=True, position=None if shard is None else shard[0])
        for spec in bar:
            decision, lock = _claim_decision(results_dir, spec, wait) if main else (None, None)
            decision = dist.broadcast_object(decision)  # one decision, so every rank walks the same runs
            if decision == "busy":
                busy.append(spec)
                continue
            if decision == "done":
                if main:
                    records[spec.hash] = store.finished_record(results_dir, spec)
                continue
            try:
                record = run_one(spec, data_root=data_root, results_dir=results_dir, device=device,
                                 metric_backend=metric_backend, cache=cache, num_workers=num_workers,
                                 save_adapter=save_adapter)
            finally:
                if lock is not None:
                    lock.release()
            if record is not None:
                records[spec.hash] = record
    dist.barrier()  # nobody leaves (and tears the process group down) while rank 0 still scores
    return [records[s.hash] for s in specs if s.hash in records]


def _claim_decision(results_dir: str | Path, spec: RunSpec, wait: bool) -> tuple[str, Any]:
    """("done" | "busy" | "run", the held claim for "run"): whether this process computes `spec` now."""
    from filelock import Timeout

    if store.finished_record(results_dir, spec) is not None:
        log.debug("skip %s (finished)", spec.run_name)
        return "done", None
    lock = store.claim(results_dir, spec)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        log.info("later: %s (another process is computing it)", spec.run_name)
        return "busy", None
    if store.finished_record(results_dir, spec) is not None:  # finished by the holder we waited for
        lock.release()
        log.info("skip %s (finished by another process)", spec.run_name)
        return "done", None
    return "run", lock


def rescore_run(folder: str | Path, data_root: str | Path | None = None, metric_backend: str | None = None
                ) -> dict[str, Any]:
    """Recompute a finished run's metrics from its saved predictions and rewrite its record atomically."""
    from bench.tasks.registry import get_task

    folder = Path(folder)
    record = store.load_record(folder / store.RECORD)
    if record is None:
        raise UserError(f"{folder} holds no valid record.json to rescore")
    spec = RunSpec.from_dict(record["spec"])
    task = get_task(spec.task)
    backend = metric_backend or record["provenance"].get("metric_backend") or DEFAULT_BACKEND
    dataset = task.load(record["task"]["split"], data_root)
    result = score_saved(task, dataset, folder, backend)
    record["metrics"] = metrics_section(result)
    record["provenance"]["metric_backend"] = backend
    record["rescored_at"] = now()
    store.write_record(folder, record)
    return record


def metrics_section(result: Any) -> dict[str, Any]:
    values = {k: float(v) for k, v in result.values.items()}
    return {"primary": result.primary, "values": values,
            "per_class": {k: float(v) for k, v in result.per_class.items()},
            "backend": result.backend, "library": getattr(result, "library", "")}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


__all__ = ["expand_grid", "validate_specs", "shard_specs", "run_one", "run_grid", "rescore_run", "regime_names"]
