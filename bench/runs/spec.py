"""What to run and where: grids of RunSpecs, each resolved once into a ResolvedRun, and the RunContext.

    specs = expand_grid(models=["glip-synth"], tasks="synth-shapes", regimes=["zero-shot", "full-ft"],
                        shots=[1, 5], seeds=[3, 30], overrides={"max_epochs": 2})
    runs = validate_specs(specs, data_root)          # every bad spec fails here, before any compute

`resolve` is the only place a spec's overrides are told apart (model field or regime setting) and its
hyper-parameters and splits are worked out; everything after it (training, prediction, the record) reads
the ResolvedRun. RunSpec itself lives in bench.results.records, since records (and the reports that read
them) carry it without depending on the runner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.dist import comm as dist
from bench.dist import ddp
from bench.models import ResolvedModel, model_fields, resolve_model
from bench.models.cache import ModelCache
from bench.results.records import RunSpec
from bench.runs.hparams import RunHParams, resolve_hparams
from bench.runs.regimes import Regime, get_regime
from bench.runs.scoring import DEFAULT_BACKEND
from bench.tasks.fewshot import SEEDS, SHOTS, check_shots
from bench.tasks.registry import Task, get_task, resolve_tasks
from bench.util.errors import UserError, closest, unknown_name


@dataclass(frozen=True)
class RunContext:
    """Where and how runs execute; none of it is part of a run's spec (nor changes its numbers).

    num_workers: image-decoding worker processes for inference (None: bench.models.batching.auto_workers).
    text_encoder: a local bert-base-uncased directory, for presets without a built-in vocabulary.
    save_adapter: keep a training run's stored tensors (bench.results.store.ADAPTER; full-ft: every weight).
    models: the built models, reused across the runs of a grid (made from device and text_encoder if None).
    """

    data_root: str | Path | None = None
    results_dir: str | Path = "results"
    device: str = "cpu"
    metric_backend: str = DEFAULT_BACKEND
    num_workers: int | None = None
    text_encoder: str | Path | None = None
    save_adapter: bool = True
    models: ModelCache | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.models is None:
            object.__setattr__(self, "models", ModelCache(self.device, self.text_encoder))


@dataclass(frozen=True)
class ResolvedRun:
    """A spec with every name looked up and every default filled in.

    model: the model's family and config, built once here (the checks and the build read it).
    eval_split: the split predicted and scored; train_split / val_split: the training and early-stopping
    splits of a training regime (None for zero-shot).
    """

    spec: RunSpec
    task: Task
    regime: Regime
    model_overrides: dict[str, Any]
    hparams: RunHParams
    model: ResolvedModel
    eval_split: str
    train_split: str | None = None
    val_split: str | None = None

    @property
    def trains(self) -> bool:
        return self.regime.trains

    @property
    def splits(self) -> list[str]:
        """Every split the run reads, eval split first."""
        return list(dict.fromkeys(s for s in (self.eval_split, self.train_split, self.val_split) if s is not None))


# ------------------------------------------------------------------------------------ overrides
def _unknown_override(key: str, regimes: Sequence[str]) -> UserError:
    settings = sorted({k for r in regimes for k in get_regime(r).defaults})
    near = closest(key, [*settings, *model_fields()])
    hint = f" Did you mean {near[0]!r}?" if near else ""
    return UserError(
        f"unknown override key {key!r}.{hint}\n  settings of {', '.join(regimes)}: {', '.join(settings)}\n"
        f"  model (GLIPConfig) fields: {', '.join(sorted(model_fields()))}"
    )


def split_overrides(overrides: dict[str, Any], regime: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, regime overrides), told apart by name; unknown key -> UserError listing valid ones."""
    model_keys, settings = model_fields(), get_regime(regime).defaults
    model, rest = {}, {}
    for key, value in overrides.items():
        if key in model_keys and key in settings:
            raise UserError(f"override {key!r} is both a model field and a {regime} setting; rename one")
        if key in model_keys:
            model[key] = value
        elif key in settings:
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


# ------------------------------------------------------------------------------------------ grids
def expand_grid(
    *, models: Sequence[str], tasks: str | Sequence[str], regimes: Sequence[str], shots: Sequence[int | None] | None,
    seeds: Sequence[int] | None, prompt_set: str = "plain", overrides: dict[str, Any] | None = None,
    checkpoint: str | None = None,
) -> list[RunSpec]:
    """The cross product as RunSpecs with defaults filled in (split = the task's eval or fine-tune split).

    zero-shot takes no shots or seeds (one run per model x task); training regimes take shots x seeds
    (None as a shot = the full training set). shots/seeds None = the official 1,3,5,10 x 3,30,300.
    """
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


def shard_specs(specs: Sequence[RunSpec], index: int, count: int) -> list[RunSpec]:
    """The index-th (0-based) of `count` disjoint parts of a grid: every count-th spec in spec-hash order."""
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {index}/{count}: need 0 <= i < N (i counts from 0)")
    return sorted(specs, key=lambda s: s.hash)[index::count]


# ------------------------------------------------------------------------------------- resolving
def train_val_splits(task: Task) -> tuple[str, str]:
    """(train split, val split for early stopping) of a task."""
    if "train" not in task.splits:
        raise UserError(f"task {task.name} has no train split ({task.file}); it can only be run zero-shot")
    return "train", ("val" if "val" in task.splits else task.eval_split)


def resolve(spec: RunSpec, data_root: str | Path | None = None, *, check_data: bool = True) -> ResolvedRun:
    """The run `spec` describes, or a UserError saying what to change; nothing is computed.

    check_data: also check that every split's files are present and that the shots fit the train split
    (off where a caller has checked the same specs already).
    """
    regime, task = get_regime(spec.regime), get_task(spec.task)
    model_over, reg_over = split_overrides(spec.overrides, spec.regime)
    hparams = resolve_hparams(regime, spec.shots, reg_over)
    model = resolve_model(spec.model, model_over, spec.checkpoint)  # a bad preset, value or checkpoint fails here
    if task.prompt_sets and spec.prompt_set not in task.prompt_sets:
        raise unknown_name(f"prompt set of task {task.name}", spec.prompt_set, task.prompt_sets)
    train_split = val_split = None
    if regime.trains:
        if task.is_grounding:
            raise UserError(f"task {task.name} is a grounding task: only zero-shot runs are supported on it")
        why = train_prompt_refusal(task, regime.name, model)
        if why:
            raise UserError(why)
        if spec.seed < 0:
            raise UserError(f"--seeds {spec.seed}: a few-shot seed must be >= 0")
        train_split, val_split = train_val_splits(task)
    run = ResolvedRun(spec=spec, task=task, regime=regime, model_overrides=model_over, hparams=hparams,
                      model=model,
                      eval_split=spec.split or task.eval_split, train_split=train_split, val_split=val_split)
    for split in run.splits:
        if split not in task.splits:
            raise unknown_name(f"split of task {task.name}", split, task.splits)
    if check_data:
        check_run_data(run, data_root)
    return run


def train_prompt_refusal(task: Task, regime: str, model: ResolvedModel) -> str | None:
    """Why a training regime cannot run on `task` because of its class prompt, or None.

    A task whose prompt needs several chunks trains only with per-image sampled captions (its
    `train_prompt`, bench.data.od_captions); those need a model family that builds them (its
    `sampled_captions_refusal` is None). Prompt tuning runs there with class-anchored offsets
    (bench.data.prompt_anchor).
    """
    if task.train_prompt is None:
        if task.chunk_size is None:
            return None
        return (f"task {task.name} needs chunked prompts ({task.chunk_size} classes per prompt) and declares no "
                "train_prompt: training needs all classes in one caption or per-image sampled captions "
                "(`train_prompt: {rule: sampled}` in its task file, docs/protocols.md); run it zero-shot")
    family = model.family
    why = getattr(family, "sampled_captions_refusal", "its adapter builds no per-image captions")
    if family.refusal(regime, "detection") is None and why:
        return (f"--model {model.name}: {family.name} cannot train on task {task.name}, which trains on per-image "
                f"sampled captions (train_prompt): {why}. Run it zero-shot, or train GLIP")
    return None


def check_run_data(run: ResolvedRun, data_root: str | Path | None) -> None:
    """Every split's files are present, and the shots fit the train split."""
    task = run.task
    for split in run.splits:
        if not task.data_present(data_root, split):
            raise UserError(f"task {task.name}: the data of split {split!r} is missing "
                            f"({task.ann_path(split, data_root)} or {task.images_path(split, data_root)}); "
                            f"pass --data-root or get it: {task.source}")
    if run.trains:
        check_shots(task, run.train_split, run.spec.shots, run.spec.seed, data_root)


def validate_specs(specs: Iterable[RunSpec], data_root: str | Path | None = None,
                   text_encoder: str | Path | None = None) -> list[ResolvedRun]:
    """Every spec resolved, failing before any compute with a message saying what to change."""
    runs = []
    for spec in specs:
        run = resolve(spec, data_root, check_data=False)
        run.model.check(regime=spec.regime, task_kind="grounding" if run.task.is_grounding else "detection",
                        text_encoder=text_encoder, infer_batch_size=run.hparams.infer.infer_batch_size,
                        world_size=dist.world_size())
        check_run_data(run, data_root)
        runs.append(run)
    return runs


def check_world(runs: Iterable[ResolvedRun]) -> None:
    """Under torchrun (world size > 1) the global batch of a training run is split over the processes:
    refuse an uneven split before any compute (every rank then holds the same trained weights)."""
    world = dist.world_size()
    if world <= 1:
        return
    for run in runs:
        if run.trains:
            ddp.check_batch_size(run.hparams.train.batch_size, world)
