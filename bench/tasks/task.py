"""A task: one benchmark data set as the YAML file declares it (splits, classes, prompts, metric, caps).

`Task` values come from the registry (bench.tasks.registry), which validates the files (bench.tasks.task_file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.util.errors import UserError, unknown_name

PROMPT_SET_KEYS = ("names", "prefix", "suffix")
GROUNDING_FORMATS = ("mdetr_flickr", "mdetr_refexp")  # each entry brings its own caption: no class prompt


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root, else $GLIP_BENCH_DATA, else ./data."""
    if data_root is not None:
        return Path(data_root)
    return Path(os.environ.get("GLIP_BENCH_DATA") or "data")


@dataclass(frozen=True)
class SplitFiles:
    """One split's files, relative to the task root: annotation json, image dir, and for Flickr the
    Flickr30K Entities dir (with Annotations/ and Sentences/)."""

    ann: str
    images: str
    entities: str | None = None


@dataclass(frozen=True)
class Task:
    """One benchmark task (a validated YAML). See tasks/README.md for every field."""

    name: str
    version: int
    description: str
    source: str
    groups: tuple[str, ...]
    format: str
    root: str
    splits: dict[str, SplitFiles]
    eval_split: str
    finetune_split: str
    fewshot: dict[str, str]
    classes: tuple[str, ...] | None
    renames: dict[str, str]
    prompt_sets: dict[str, dict[str, dict[str, str]]]
    separator: str
    chunk_size: int | None
    detections_per_image: int
    metric: str
    ann_sha256: dict[str, str]
    open_vocab: dict[str, Any] | None = None  # {base, novel, drop_empty_images}: bench.data.open_vocab
    file: Path = field(default=Path(), compare=False)
    extra_metrics: tuple[str, ...] = ()  # bench.metrics.extras names, computed on top of `metric`
    # how training captions are made: None = the task's one fixed class caption; {rule: sampled, negatives,
    # all_negatives_prob} = per-image captions (bench.data.od_captions), what chunked tasks train with
    train_prompt: dict[str, Any] | None = None

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    @property
    def is_grounding(self) -> bool:
        """Phrase grounding (Flickr30K) or referring expressions: predicted per caption, not per class prompt."""
        return self.format in GROUNDING_FORMATS

    # ---- paths --------------------------------------------------------------------------------
    def split_files(self, split: str) -> SplitFiles:
        if split not in self.splits:
            raise unknown_name(f"split of task {self.name}", split, self.splits)
        return self.splits[split]

    def root_path(self, data_root: str | os.PathLike | None = None) -> Path:
        return resolve_data_root(data_root) / self.root

    def ann_path(self, split: str, data_root: str | os.PathLike | None = None) -> Path:
        return self.root_path(data_root) / self.split_files(split).ann

    def images_path(self, split: str, data_root: str | os.PathLike | None = None) -> Path:
        return self.root_path(data_root) / self.split_files(split).images

    def entities_path(self, split: str, data_root: str | os.PathLike | None = None) -> Path | None:
        ent = self.split_files(split).entities
        return None if ent is None else self.root_path(data_root) / ent

    def present_splits(self, data_root: str | os.PathLike | None = None) -> list[str]:
        """Splits whose annotation file and image dir (and Entities dir) exist under the data root."""
        out = []
        for split in self.splits:
            ent = self.entities_path(split, data_root)
            if (self.ann_path(split, data_root).is_file() and self.images_path(split, data_root).is_dir()
                    and (ent is None or ((ent / "Annotations").is_dir() and (ent / "Sentences").is_dir()))):
                out.append(split)
        return out

    def data_present(self, data_root: str | os.PathLike | None = None, split: str | None = None) -> bool:
        """Whether `split` (default: every split) is on disk."""
        present = self.present_splits(data_root)
        return split in present if split is not None else len(present) == len(self.splits)

    def fewshot_path(self, shots: int, seed: int, data_root: str | os.PathLike | None = None,
                     which: str = "train") -> Path | None:
        """The shipped fewshot_{which}_shot{k}_seed{s}.json when present under the data root, else None
        (not shipped, or this task has no pre-sampled files for `which`)."""
        pattern = self.fewshot.get(which)
        if pattern is None:
            return None
        path = self.root_path(data_root) / pattern.format(shots=shots, seed=seed)
        return path if path.is_file() else None

    # ---- loading ------------------------------------------------------------------------------
    def load(self, split: str | None = None, data_root: str | os.PathLike | None = None, vocabulary: str = "all"):
        """Load a split (default: eval_split) as a DetectionDataset or GroundingDataset (Flickr30K, REC).

        vocabulary: for an open-vocabulary task, "all" (base + novel classes: evaluation) or "base" (the
        classes training may see: their prompts and boxes only); other tasks have one vocabulary.
        """
        split = split or self.eval_split
        dataset = self._load_file(split, self.ann_path(split, data_root), data_root, check_hash=True)
        if self.open_vocab is None:
            return dataset
        from bench.data.open_vocab import open_vocab_view

        return open_vocab_view(dataset, self.open_vocab, vocabulary, self.name)

    def _load_file(self, split: str, ann: Path, data_root, check_hash: bool):
        from bench.data.coco import load_coco
        from bench.data.flickr import load_mdetr_flickr
        from bench.data.lvis import load_lvis
        from bench.data.refexp import load_mdetr_refexp
        from bench.util.io import sha256_file

        source = f"{self.source} (task {self.name}, defined in {self.file})"
        if not ann.is_file():
            raise UserError(
                f"task {self.name}: annotation file for split {split!r} not found: {ann}\n"
                f"  data root: {resolve_data_root(data_root)} (set --data-root or GLIP_BENCH_DATA)\n"
                f"  how to obtain it: {self.source}"
            )
        if check_hash and split in self.ann_sha256:
            got = sha256_file(ann)
            if got != self.ann_sha256[split]:
                raise UserError(
                    f"task {self.name} v{self.version}: {ann} has sha256 {got}, but the task was defined with "
                    f"{self.ann_sha256[split]}; a different annotation file would change the numbers"
                )
        images = self.images_path(split, data_root)
        kwargs = dict(name=self.name, split=split, source=source)
        if self.format == "mdetr_flickr":
            return load_mdetr_flickr(ann, images, self.entities_path(split, data_root), **kwargs)
        if self.format == "mdetr_refexp":
            return load_mdetr_refexp(ann, images, allow_no_target=self.metric == "grec_accuracy", **kwargs)
        loader = load_lvis if self.format == "lvis" else load_coco
        return loader(ann, images, classes=self.classes, renames=self.renames, **kwargs)

    def provenance_notes(self, splits: list[str], data_root: str | os.PathLike | None = None) -> dict[str, Any]:
        """What a record should say about how this task's data were read (a task family's cleaning, for
        one); nothing for a plain YAML task."""
        return {}

    # ---- prompts ------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int | None:
        """Number of classes, or None when they come from the annotation file."""
        return None if self.classes is None else len(self.classes)

    def base_names(self, category_names: list[str] | None = None) -> list[str]:
        """Class names in category-id order before any prompt set: `classes`, else the file's names
        (`category_names`, id order) through `renames`."""
        if self.classes is not None:
            if category_names is not None and len(category_names) != len(self.classes):
                raise UserError(
                    f"task {self.name} lists {len(self.classes)} classes but the data set has "
                    f"{len(category_names)} categories ({self.file})"
                )
            return list(self.classes)
        if category_names is None:
            raise UserError(
                f"task {self.name} takes its class names from the annotation file; pass the data set's "
                f"category names (bench.tasks.prompts.task_prompt_chunks does this after loading)"
            )
        return [self.renames.get(n, n) for n in category_names]

    def prompt_names(self, prompt_set: str = "plain", category_names: list[str] | None = None
                     ) -> tuple[list[str], list[str], list[str]]:
        """(names, prefixes, suffixes) in category-id order, exactly as they go into the caption.

        A name the prompt set does not override goes through the official clean_name (evaluation
        path: maskrcnn_benchmark/data/datasets/od_to_grounding.py); a name given by the set is used raw,
        as the official CAPTION_PROMPT names are (create_queries_and_maps). Keys of a set's names/prefix/suffix are
        base names.
        """
        from glip.prompts import clean_name

        if prompt_set not in self.prompt_sets:
            raise unknown_name(f"prompt set of task {self.name}", prompt_set, self.prompt_sets)
        base = self.base_names(category_names)
        pset = self.prompt_sets[prompt_set]
        for key in PROMPT_SET_KEYS:
            unknown = sorted(set(pset.get(key, {})) - set(base))
            if unknown:
                raise UserError(
                    f"task {self.name} ({self.file}): prompt_sets.{prompt_set}.{key} names classes {unknown} "
                    f"that the data set does not have"
                )
        renamed = pset.get("names", {})
        names = [renamed[b] if b in renamed else clean_name(b) for b in base]
        prefixes = [pset.get("prefix", {}).get(b, "") for b in base]
        suffixes = [pset.get("suffix", {}).get(b, "") for b in base]
        return names, prefixes, suffixes

    def to_dict(self) -> dict[str, Any]:
        """The task as plain data (for records and `glip-bench tasks --json`)."""
        return {
            "name": self.name, "version": self.version, "description": self.description, "source": self.source,
            "groups": list(self.groups), "format": self.format, "root": self.root,
            "splits": {k: {kk: vv for kk, vv in vars(v).items() if vv is not None} for k, v in self.splits.items()},
            "eval_split": self.eval_split, "finetune_split": self.finetune_split, "fewshot": dict(self.fewshot),
            "classes": None if self.classes is None else list(self.classes), "renames": dict(self.renames),
            "prompt_sets": self.prompt_sets, "separator": self.separator, "chunk_size": self.chunk_size,
            "detections_per_image": self.detections_per_image, "metric": self.metric,
            "ann_sha256": dict(self.ann_sha256), "open_vocab": self.open_vocab, "file": str(self.file),
            **({"extra_metrics": list(self.extra_metrics)} if self.extra_metrics else {}),
            **({"train_prompt": dict(self.train_prompt)} if self.train_prompt else {}),
        }
