"""Task families: one data file (`_family.yaml`) that declares many tasks found in a downloaded folder.

A family (tasks/rf100vl/_family.yaml is one) lists its data sets with their domain, the folder layout
(split folders, the annotation file's name), the protocol (eval and fine-tune split) and one or more
variants (a root folder and a task-name prefix each). Every data set x variant becomes a `FamilyTask`:
a `Task` whose classes and category ids come from the annotation file when it loads, with the
Roboflow dummy category 0 removed (bench.tasks.roboflow), every listed image checked, and an
`instructions` prompt set built from the export's annotator instructions when the folder has them.

Groups: `<prefix>` (all data sets of a variant), `<prefix>-<domain>` (one per domain), and each subset.
The registry (bench.tasks.registry) adds these tasks and groups next to the YAML tasks; nothing else
needs to know a family exists.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.tasks.roboflow import (
    check_images_present,
    class_descriptions,
    clean_roboflow_coco,
    read_instructions,
)
from bench.tasks.task import SplitFiles, Task, resolve_data_root
from bench.tasks.task_file import NAME_RE, SPLIT_RE
from bench.util.errors import UserError

FAMILY_FILE = "_family.yaml"
FAMILY_MAX_BYTES = 1024 * 1024
KINDS = ("roboflow-coco",)
KEYS = {"family", "kind", "version", "description", "source", "how_to_get", "layout", "eval_split",
        "finetune_split", "variants", "domains", "datasets", "short_names", "subsets"}
REQUIRED = {"family", "kind", "version", "description", "source", "variants", "datasets"}
VARIANT_KEYS = {"root", "task_prefix", "download", "fixed_train_shots", "description"}
DEFAULT_LAYOUT = {"ann": "_annotations.coco.json", "splits": {"train": "train", "val": "valid", "test": "test"},
                  "instructions": "README.dataset.txt"}
INSTRUCTIONS = "instructions"
NAME_CLEANING = "class names through glip.prompts.clean_name, as the ODinW tasks' plain prompts"
# what load() learnt about each annotation file (path -> note), for the record's provenance
_CLEANING: dict[str, str | None] = {}
_INSTRUCTIONS: dict[str, str | None] = {}


@dataclass(frozen=True)
class FamilyTask(Task):
    """A task of a family: one data set of one variant, read from the folder the download wrote."""

    family: str = ""
    variant: str = ""
    dataset_dir: str = ""  # the data set's folder name, as the download writes it
    domain: str = ""
    fixed_train_shots: int | None = None
    how_to_get: str = ""
    instructions_file: str | None = None

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    # ---- loading ------------------------------------------------------------------------------
    def _load_file(self, split: str, ann: Path, data_root, check_hash: bool):
        from bench.data.coco import build_detection_dataset, check_images_dir, read_ann_json, validate_coco

        if not ann.is_file():
            raise UserError(f"task {self.name}: annotation file for split {split!r} not found: {ann}\n"
                            f"  data root: {resolve_data_root(data_root)} (set --data-root or GLIP_BENCH_DATA)\n"
                            f"  how to obtain it: {self.how_to_get}")
        raw = read_ann_json(ann, self.how_to_get)
        data, note = clean_roboflow_coco(raw) if isinstance(raw, dict) else (raw, None)
        validate_coco(data, ann)
        images = self.images_path(split, data_root)
        check_images_dir(images, ann, self.how_to_get)
        check_images_present(data, images, ann, self.name)
        _CLEANING[str(ann)] = note
        self._read_instructions(data_root)
        return build_detection_dataset(data, ann, images, name=self.name, split=split)

    def _instructions_path(self, data_root) -> Path | None:
        return None if self.instructions_file is None else self.root_path(data_root) / self.instructions_file

    def _read_instructions(self, data_root) -> str | None:
        path = self._instructions_path(data_root)
        text = None if path is None else read_instructions(path)
        _INSTRUCTIONS[self.name] = text
        return text

    def has_instructions(self, data_root=None) -> bool:
        path = self._instructions_path(data_root)
        return path is not None and path.is_file()

    # ---- prompts ------------------------------------------------------------------------------
    def prompt_names(self, prompt_set: str = "plain", category_names: list[str] | None = None
                     ) -> tuple[list[str], list[str], list[str]]:
        """plain: the file's names through clean_name. instructions: the same names, each followed by
        the first sentence of its section in the annotator instructions (read when the split loaded)."""
        names, prefixes, suffixes = super().prompt_names("plain" if prompt_set == INSTRUCTIONS else prompt_set,
                                                         category_names)
        if prompt_set != INSTRUCTIONS:
            return names, prefixes, suffixes
        text = _INSTRUCTIONS.get(self.name)
        if text is None:
            raise UserError(f"task {self.name}: prompt set 'instructions' needs the annotator instructions "
                            f"{self.instructions_file} in the data set's folder, and it has none; use --prompt-set plain")
        base = self.base_names(category_names)
        described = class_descriptions(text, base)
        if not described:
            raise UserError(f"task {self.name}: {self.instructions_file} has no section headed by a class name "
                            f"({', '.join(base[:10])}); prompt set 'instructions' cannot be built, use plain")
        return names, prefixes, [f", {described[b]}" if b in described else s for b, s in zip(base, suffixes)]

    # ---- what a record says about the data ----------------------------------------------------
    def provenance_notes(self, splits: list[str], data_root=None) -> dict[str, Any]:
        cleaning = {}
        for split in splits:
            key = str(self.ann_path(split, data_root))
            if key not in _CLEANING:
                self._load_file(split, Path(key), data_root, check_hash=False)
            cleaning[split] = _CLEANING[key] or "no Roboflow dummy category (already cleaned, or not an export)"
        notes: dict[str, Any] = {"task_family": f"{self.family}/{self.variant}", "domain": self.domain,
                                 "annotation_cleaning": cleaning, "class_names": NAME_CLEANING}
        if self.fixed_train_shots is not None:
            notes["fewshot_train"] = fixed_shots_note(self.fixed_train_shots)
        return notes


def fixed_shots_note(shots: int) -> str:
    return (f"the shipped train split is the fixed {shots}-shot sample, used as is (not resampled); "
            "seeds vary training only")


# ---- reading a family file ---------------------------------------------------------------------
@dataclass
class Family:
    """The tasks and groups one family file declares."""

    tasks: list[FamilyTask] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


def _err(path: Path, key: str, msg: str) -> UserError:
    return UserError(f"{path}: key {key!r}: {msg}")


def _read(path: Path) -> dict[str, Any]:
    import yaml

    from bench.tasks.task_file import check_duplicate_keys

    if path.stat().st_size > FAMILY_MAX_BYTES:
        raise UserError(f"{path}: a family file over {FAMILY_MAX_BYTES} bytes is not read")
    check_duplicate_keys(path)
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"cannot read family file {path}: {e}") from e
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: a family file holds a mapping (family, kind, variants, datasets, ...)")
    unknown, missing = sorted(set(cfg) - KEYS), sorted(REQUIRED - set(cfg))
    if unknown:
        raise UserError(f"{path}: unknown keys {unknown}; valid keys: {', '.join(sorted(KEYS))}")
    if missing:
        raise UserError(f"{path}: missing required keys {missing}")
    return cfg


def slug(folder: str) -> str:
    """A folder name as lower-case words joined by single dashes ('-grccs' -> 'grccs')."""
    return "-".join(w for w in re.split(r"[^0-9a-z]+", folder.lower()) if w)


def _str_map(value: Any, path: Path, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _err(path, key, "must map strings to strings (quote names such as '2024-frc')")
    return dict(value)


def _layout(cfg: dict[str, Any], path: Path) -> tuple[str, dict[str, str], str | None]:
    layout = {**DEFAULT_LAYOUT, **(cfg.get("layout") or {})}
    if set(layout) - set(DEFAULT_LAYOUT):
        raise _err(path, "layout", f"unknown keys {sorted(set(layout) - set(DEFAULT_LAYOUT))}; valid: {list(DEFAULT_LAYOUT)}")
    splits = _str_map(layout["splits"], path, "layout.splits")
    bad = [s for s in splits if not SPLIT_RE.match(s)]
    if not splits or bad:
        raise _err(path, "layout.splits", f"split names are lower-case letters, digits and _ (got {bad or 'none'})")
    if not isinstance(layout["ann"], str) or not layout["ann"]:
        raise _err(path, "layout.ann", "must be the annotation file's name inside each split folder")
    return layout["ann"], splits, layout.get("instructions")


def read_family(path: Path) -> Family:
    """The tasks and groups of one family file; every problem names the file and the key."""
    cfg = _read(path)
    name, kind, version = cfg["family"], cfg["kind"], cfg["version"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _err(path, "family", "must be lower-case words joined by dashes")
    if kind not in KINDS:
        raise _err(path, "kind", f"{kind!r} is not one of {KINDS}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _err(path, "version", f"must be an integer >= 1, got {version!r}")
    ann, splits, instructions = _layout(cfg, path)
    eval_split, ft_split = cfg.get("eval_split", "test"), cfg.get("finetune_split", cfg.get("eval_split", "test"))
    for key, split in (("eval_split", eval_split), ("finetune_split", ft_split)):
        if split not in splits:
            raise _err(path, key, f"{split!r} is not one of the splits {list(splits)}")
    datasets = _str_map(cfg["datasets"], path, "datasets")
    domains = _str_map(cfg.get("domains"), path, "domains")
    short = _str_map(cfg.get("short_names"), path, "short_names")
    stray = sorted(set(short) - set(datasets))
    if stray:
        raise _err(path, "short_names", f"{stray} are not in datasets")
    unknown_domains = sorted({d for d in datasets.values() if domains and d not in domains})
    if unknown_domains:
        raise _err(path, "datasets", f"domains {unknown_domains} are not listed under 'domains'")
    variants = cfg["variants"]
    if not isinstance(variants, dict) or not variants:
        raise _err(path, "variants", "must map a variant name to {root, task_prefix, ...}")
    fam = Family()
    by_variant: dict[str, dict[str, str]] = {}
    for vname, v in variants.items():
        by_variant[vname] = _variant(fam, cfg, path, vname, v, datasets, domains, short, ann, splits, instructions,
                                     eval_split, ft_split)
    for sname, sub in (cfg.get("subsets") or {}).items():
        _subset(fam, path, sname, sub, by_variant)
    return fam


def _variant(fam: Family, cfg: dict[str, Any], path: Path, vname: str, v: Any, datasets: dict[str, str],
             domains: dict[str, str], short: dict[str, str], ann: str, splits: dict[str, str],
             instructions: str | None, eval_split: str, ft_split: str) -> dict[str, str]:
    """Add a variant's tasks and groups to `fam`; return folder -> task name."""
    key = f"variants.{vname}"
    if not isinstance(v, dict) or set(v) - VARIANT_KEYS or not {"root", "task_prefix"} <= set(v):
        raise _err(path, key, f"must be a mapping with root and task_prefix (optional: {sorted(VARIANT_KEYS)})")
    prefix, root = v["task_prefix"], v["root"]
    if not isinstance(prefix, str) or not NAME_RE.match(prefix):
        raise _err(path, f"{key}.task_prefix", "must be lower-case words joined by dashes")
    if not isinstance(root, str) or not root or os.path.isabs(root):
        raise _err(path, f"{key}.root", "must be a folder relative to the data root")
    shots = v.get("fixed_train_shots")
    if shots is not None and (not isinstance(shots, int) or isinstance(shots, bool) or shots < 1 or "train" not in splits):
        raise _err(path, f"{key}.fixed_train_shots", "must be a positive integer, for a family with a train split")
    how = cfg["source"] if not cfg.get("how_to_get") else str(cfg["how_to_get"]).format(
        download=v.get("download", ""), path=f"<data root>/{root}")
    names: dict[str, str] = {}
    for folder, domain in datasets.items():
        task_name = f"{prefix}-{short.get(folder) or slug(folder)}"
        if task_name in names.values():
            raise _err(path, "datasets", f"{folder!r} gives the task name {task_name} twice; add it to short_names")
        names[folder] = task_name
        dom = domains.get(domain, slug(domain))
        where = f"{root}/{folder}"
        task = FamilyTask(
            name=task_name, version=int(cfg["version"]),
            description=f"{cfg['description']}: {folder} ({domain}); {v.get('description', vname)}",
            source=cfg["source"], groups=(prefix, f"{prefix}-{dom}"), format="coco", root=where,
            splits={s: SplitFiles(f"{d}/{ann}", d) for s, d in splits.items()},
            eval_split=eval_split, finetune_split=ft_split, fewshot={}, classes=None, renames={},
            prompt_sets={"plain": {}, **({INSTRUCTIONS: {}} if instructions else {})}, separator=". ",
            chunk_size=None, detections_per_image=100, metric="coco_bbox", ann_sha256={}, file=path,
            family=str(cfg["family"]), variant=vname, dataset_dir=folder, domain=dom, fixed_train_shots=shots,
            how_to_get=f"{how} (this task's folder: <data root>/{where})",
            instructions_file=instructions,
        )
        fam.tasks.append(task)
        for g in task.groups:
            fam.groups.setdefault(g, []).append(task_name)
    fam.descriptions[prefix] = f"{cfg['description']} ({vname}: {v.get('description', '')})"
    for d in sorted({domains.get(x, slug(x)) for x in datasets.values()}):
        fam.descriptions[f"{prefix}-{d}"] = f"{cfg['family']} {vname}, domain {d}"
    return names


def _subset(fam: Family, path: Path, sname: str, sub: Any, by_variant: dict[str, dict[str, str]]) -> None:
    key = f"subsets.{sname}"
    if not isinstance(sname, str) or not NAME_RE.match(sname):
        raise _err(path, key, "subset names are lower-case words joined by dashes")
    if not isinstance(sub, dict) or sub.get("variant") not in by_variant or not isinstance(sub.get("members"), list):
        raise _err(path, key, f"must give variant (one of {list(by_variant)}) and members (a list of data set folders)")
    names = by_variant[sub["variant"]]
    unknown = [m for m in sub["members"] if m not in names]
    if unknown:
        raise _err(path, f"{key}.members", f"{unknown} are not in datasets")
    members = [names[m] for m in sub["members"]]
    fam.groups[sname] = members
    fam.descriptions[sname] = str(sub.get("description", ""))
    also = f"; the {sname} data sets alone: rf100vl.{sub['download']}(path=<the same folder>)" if sub.get("download") else ""
    for i, task in enumerate(fam.tasks):
        if task.name in members:
            fam.tasks[i] = _with_group(task, sname, also)


def _with_group(task: FamilyTask, group: str, how_also: str) -> FamilyTask:
    """The task in one more group; how_also joins its download hint (before the folder it names)."""
    from dataclasses import replace

    how = task.how_to_get.replace(" (this task's folder:", f"{how_also} (this task's folder:", 1)
    return replace(task, groups=(*task.groups, group), how_to_get=how)


def find_families(directory: Path) -> list[Path]:
    return sorted(Path(directory).rglob(FAMILY_FILE))
