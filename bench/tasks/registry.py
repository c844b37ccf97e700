"""Task registry: finds the task YAMLs, validates them, and serves `Task` values.

Tasks are data (tasks/**/*.yaml, read with mmengine's Config so `_base_` inheritance works; files
whose name starts with "_" are bases or group lists, not tasks). Every file is checked against
`SCHEMA`: unknown keys, missing keys, wrong types, duplicate names and inconsistent groups raise a
UserError naming the file and the key. Valid tasks go into an mmengine `Registry("task")`; lookups
of unknown names raise a UserError with the closest valid name.

The tasks directory is the repository's `tasks/` (found from this package), or $GLIP_BENCH_TASKS.
The data root is `--data-root`, else $GLIP_BENCH_DATA, else ./data; task paths are relative to it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.util.errors import UserError, unknown_name

FORMATS = ("coco", "lvis", "mdetr_flickr")
METRICS = ("coco_bbox", "lvis_fixed_ap", "lvis_bbox", "flickr_recall")
METRICS_BY_FORMAT = {"coco": ("coco_bbox",), "lvis": ("lvis_fixed_ap", "lvis_bbox"), "mdetr_flickr": ("flickr_recall",)}
PROMPT_SET_KEYS = ("names", "prefix", "suffix")
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SPLIT_RE = re.compile(r"^[a-z0-9_]+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# key -> (required, default). Types and value rules are checked in _validate.
SCHEMA: dict[str, tuple[bool, Any]] = {
    "name": (True, None),
    "version": (True, None),
    "description": (True, None),
    "source": (True, None),
    "groups": (False, []),
    "format": (True, None),
    "root": (True, None),
    "splits": (True, None),
    "eval_split": (True, None),
    "finetune_split": (False, None),  # default: eval_split
    "fewshot": (False, {}),
    "classes": (False, None),  # None: names come from the annotation file (COCO, LVIS)
    "renames": (False, {}),
    "prompt_sets": (True, None),
    "separator": (False, ". "),
    "chunk_size": (False, None),
    "detections_per_image": (False, 100),
    "metric": (True, None),
    "ann_sha256": (False, {}),
}


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root, else $GLIP_BENCH_DATA, else ./data."""
    if data_root is not None:
        return Path(data_root)
    return Path(os.environ.get("GLIP_BENCH_DATA") or "data")


def default_tasks_dir() -> Path:
    """$GLIP_BENCH_TASKS, else the checkout's tasks/ next to the bench package, else the copy an installed
    package ships as bench/task_files (pyproject.toml maps tasks/ there)."""
    env = os.environ.get("GLIP_BENCH_TASKS")
    if env:
        return Path(env)
    bench_dir = Path(__file__).resolve().parents[1]
    checkout = bench_dir.parent / "tasks"
    if (bench_dir.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return bench_dir / "task_files"


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
    file: Path = field(default=Path(), compare=False)

    def __hash__(self) -> int:
        return hash((self.name, self.version))

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
    def load(self, split: str | None = None, data_root: str | os.PathLike | None = None):
        """Load a split (default: eval_split) as a DetectionDataset or GroundingDataset."""
        split = split or self.eval_split
        return self._load_file(split, self.ann_path(split, data_root), data_root, check_hash=True)

    def _load_file(self, split: str, ann: Path, data_root, check_hash: bool):
        from bench.data.coco import load_coco
        from bench.data.flickr import load_mdetr_flickr
        from bench.data.lvis import load_lvis
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
        loader = load_lvis if self.format == "lvis" else load_coco
        return loader(ann, images, classes=self.classes, renames=self.renames, **kwargs)

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
            "ann_sha256": dict(self.ann_sha256), "file": str(self.file),
        }


# ---- validation -------------------------------------------------------------------------------
def _err(path: Path, key: str, msg: str) -> UserError:
    return UserError(f"{path}: key {key!r}: {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str_map(value: Any, path: Path, key: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _err(path, key, f"must be a mapping, got {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise _err(path, key, f"entries must map strings to strings; got {k!r}: {v!r} (quote numbers/yes/no in YAML)")
    return dict(value)


def _validate(cfg: dict[str, Any], path: Path) -> Task:
    """Check one merged task dict against SCHEMA; every problem names the file and key."""
    unknown = sorted(set(cfg) - set(SCHEMA))
    if unknown:
        raise UserError(f"{path}: unknown keys {unknown}; valid keys: {', '.join(SCHEMA)}")
    missing = [k for k, (req, _) in SCHEMA.items() if req and k not in cfg]
    if missing:
        raise UserError(f"{path}: missing required keys {missing}")
    c = {k: cfg.get(k, default) for k, (_, default) in SCHEMA.items()}

    for key in ("name", "description", "source", "format", "root", "eval_split", "metric", "separator"):
        if not isinstance(c[key], str) or (key != "separator" and not c[key].strip()):
            raise _err(path, key, f"must be a non-empty string, got {c[key]!r}")
    if not NAME_RE.match(c["name"]):
        raise _err(path, "name", f"{c['name']!r} must be lower-case words joined by dashes (e.g. odinw-aquarium)")
    if not _is_int(c["version"]) or c["version"] < 1:
        raise _err(path, "version", f"must be an integer >= 1, got {c['version']!r}")
    if c["format"] not in FORMATS:
        raise _err(path, "format", f"{c['format']!r} is not one of {FORMATS}")
    if c["metric"] not in METRICS_BY_FORMAT[c["format"]]:
        raise _err(path, "metric", f"{c['metric']!r} does not fit format {c['format']!r}; use one of {METRICS_BY_FORMAT[c['format']]}")
    if os.path.isabs(c["root"]):
        raise _err(path, "root", f"must be relative to the data root, got {c['root']!r}")
    if not isinstance(c["groups"], list) or not all(isinstance(g, str) and NAME_RE.match(g) for g in c["groups"]):
        raise _err(path, "groups", f"must be a list of lower-case names, got {c['groups']!r}")

    if not isinstance(c["splits"], dict) or not c["splits"]:
        raise _err(path, "splits", "must be a non-empty mapping split -> {ann, images}")
    splits: dict[str, SplitFiles] = {}
    for split, files in c["splits"].items():
        k = f"splits.{split}"
        if not isinstance(split, str) or not SPLIT_RE.match(split):
            raise _err(path, k, "split names are lower-case letters, digits and _")
        if not isinstance(files, dict):
            raise _err(path, k, f"must be a mapping with ann and images, got {files!r}")
        allowed = {"ann", "images", "entities"} if c["format"] == "mdetr_flickr" else {"ann", "images"}
        bad = sorted(set(files) - allowed)
        if bad:
            raise _err(path, k, f"unknown keys {bad}; valid: {sorted(allowed)}")
        need = ["ann", "images"] + (["entities"] if c["format"] == "mdetr_flickr" else [])
        for n in need:
            if not isinstance(files.get(n), str) or not files[n]:
                raise _err(path, f"{k}.{n}", "missing or not a string (a path relative to root)")
        splits[split] = SplitFiles(files["ann"], files["images"], files.get("entities"))
    c["finetune_split"] = c["finetune_split"] if c["finetune_split"] is not None else c["eval_split"]
    for key in ("eval_split", "finetune_split"):
        if c[key] not in splits:
            raise _err(path, key, f"{c[key]!r} is not one of the splits {list(splits)}")

    fewshot = _str_map(c["fewshot"], path, "fewshot")
    for which, pattern in fewshot.items():
        if which not in splits:
            raise _err(path, f"fewshot.{which}", f"is not one of the splits {list(splits)}")
        if "{shots}" not in pattern or "{seed}" not in pattern:
            raise _err(path, f"fewshot.{which}", f"{pattern!r} must contain {{shots}} and {{seed}}")

    classes = c["classes"]
    if classes is not None:
        if not isinstance(classes, list) or not classes or not all(isinstance(x, str) and x for x in classes):
            raise _err(path, "classes", "must be a non-empty list of strings (quote names such as '0' or 'no'), or null")
        dup = sorted({x for x in classes if classes.count(x) > 1})
        if dup:
            raise _err(path, "classes", f"duplicate names {dup}")
        _check_prompt_collisions(classes, path)
    renames = _str_map(c["renames"], path, "renames")

    psets = c["prompt_sets"]
    if not isinstance(psets, dict) or "plain" not in psets:
        raise _err(path, "prompt_sets", "must be a mapping that includes 'plain' (the class names as they are)")
    prompt_sets: dict[str, dict[str, dict[str, str]]] = {}
    for pname, pset in psets.items():
        k = f"prompt_sets.{pname}"
        if not isinstance(pname, str) or not NAME_RE.match(pname):
            raise _err(path, k, "prompt set names are lower-case words joined by dashes")
        pset = {} if pset is None else pset
        if not isinstance(pset, dict):
            raise _err(path, k, f"must be a mapping with keys {PROMPT_SET_KEYS}, got {pset!r}")
        bad = sorted(set(pset) - set(PROMPT_SET_KEYS))
        if bad:
            raise _err(path, k, f"unknown keys {bad}; valid: {PROMPT_SET_KEYS}")
        prompt_sets[pname] = {pk: _str_map(pv or {}, path, f"{k}.{pk}") for pk, pv in pset.items()}
        if classes is not None:
            known = set(classes)
            for pk, mapping in prompt_sets[pname].items():
                stray = sorted(set(mapping) - known)
                if stray:
                    raise _err(path, f"{k}.{pk}", f"names {stray} are not in classes {classes}")

    if c["chunk_size"] is not None and (not _is_int(c["chunk_size"]) or c["chunk_size"] < 1):
        raise _err(path, "chunk_size", f"must be a positive integer or null, got {c['chunk_size']!r}")
    if not _is_int(c["detections_per_image"]) or c["detections_per_image"] < 1:
        raise _err(path, "detections_per_image", f"must be a positive integer, got {c['detections_per_image']!r}")
    sha = _str_map(c["ann_sha256"], path, "ann_sha256")
    for split, h in sha.items():
        if split not in splits or not SHA256_RE.match(h):
            raise _err(path, f"ann_sha256.{split}", "keys are split names, values 64 lower-case hex digits")

    return Task(
        name=c["name"], version=c["version"], description=c["description"], source=c["source"],
        groups=tuple(c["groups"]), format=c["format"], root=c["root"], splits=splits,
        eval_split=c["eval_split"], finetune_split=c["finetune_split"], fewshot=fewshot,
        classes=None if classes is None else tuple(classes), renames=renames, prompt_sets=prompt_sets,
        separator=c["separator"], chunk_size=c["chunk_size"], detections_per_image=c["detections_per_image"],
        metric=c["metric"], ann_sha256=sha, file=path,
    )


def prompt_key(name: str) -> str:
    """What a class name becomes in the uncased caption: clean_name, lower-cased, spaces collapsed."""
    from glip.prompts import clean_name

    return " ".join(clean_name(name).lower().split())


def _check_prompt_collisions(classes: list[str], path: Path) -> None:
    """Two classes whose prompts are the same words cannot be told apart by the model: an error."""
    seen: dict[str, int] = {}
    lines = _yaml_item_lines(path, "classes")
    for i, name in enumerate(classes):
        key = prompt_key(name)
        if key in seen:
            j = seen[key]
            where = f"{path}:{lines[i]}" if len(lines) == len(classes) else str(path)
            raise UserError(f"{where}: key 'classes': {classes[j]!r} and {name!r} give the same prompt {key!r} "
                            "(BERT is uncased and clean_name maps '_' to ' '); rename one of them")
        seen[key] = i


def _yaml_item_lines(path: Path, key: str) -> list[int]:
    """1-based line of each item of the top-level sequence `key` of a YAML file ([] if not there)."""
    import yaml

    if not path.is_file():
        return []
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):
        return []
    for k, v in node.value:
        if k.value == key and isinstance(v, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in v.value]
    return []


def check_duplicate_keys(path: Path) -> None:
    """A key given twice in one mapping is an error naming the file and both lines (PyYAML keeps the last)."""
    import yaml

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise UserError(f"cannot read task file {path}: {e}") from e
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in node.value:
                line = k.start_mark.line + 1
                if isinstance(k, yaml.ScalarNode) and k.value in first:
                    raise UserError(f"{path}:{line}: key {k.value!r} is given twice (first on line "
                                    f"{first[k.value]}); YAML would keep only the last value: remove one")
                first.setdefault(k.value, line)
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _read_yaml(path: Path) -> dict[str, Any]:
    from mmengine.config import Config

    try:
        cfg = Config.fromfile(str(path)).to_dict()
    except Exception as e:  # mmengine raises many kinds (yaml, io, base resolution)
        raise UserError(f"cannot read task file {path}: {type(e).__name__}: {e}") from e
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: a task file must hold a mapping")
    return cfg


# ---- the registry -----------------------------------------------------------------------------
class _Entry:
    """What the mmengine registry holds: a callable that returns the task (registries hold callables)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.__name__ = task.name

    def __call__(self) -> Task:
        return self.task


class TaskRegistry:
    """All tasks of one tasks directory, validated, in an mmengine Registry, plus their groups."""

    def __init__(self, directory: Path) -> None:
        from mmengine.registry import Registry

        self.directory = Path(directory)
        self.registry = Registry("task")
        self.group_files: dict[str, Path] = {}
        self.declared: dict[str, dict[str, str]] = {}  # group -> member task name -> note (official config)
        self.descriptions: dict[str, str] = {}
        if not self.directory.is_dir():
            raise UserError(f"tasks directory not found: {self.directory} (pass --tasks-dir DIR or set GLIP_BENCH_TASKS)")
        files = sorted(self.directory.rglob("*.yaml"))
        for path in files:
            check_duplicate_keys(path)
        for path in files:
            if path.name == "_groups.yaml":
                self._read_groups(path)
        for path in files:
            if not path.name.startswith("_"):
                self.register(_validate(_read_yaml(path), path))
        self._check_groups()

    def register(self, task: Task) -> None:
        """Add a task; a name registered twice raises, naming both files."""
        if task.name in self.registry.module_dict:
            other = self.registry.module_dict[task.name].task.file
            raise UserError(f"task name {task.name!r} is defined twice: {other} and {task.file}")
        self.registry.register_module(name=task.name, module=_Entry(task))

    def names(self) -> list[str]:
        return sorted(self.registry.module_dict)

    def get(self, name: str) -> Task:
        """The task called `name`; unknown names raise a UserError listing the valid ones and the closest."""
        if name not in self.registry.module_dict:  # checked first: mmengine would read "a.b" as a scope
            raise unknown_name("task", name, self.names())
        return self.registry.get(name)()

    def _read_groups(self, path: Path) -> None:
        cfg = _read_yaml(path)
        if set(cfg) != {"groups"} or not isinstance(cfg["groups"], dict):
            raise UserError(f"{path}: a _groups.yaml holds one key 'groups': {{group: {{description, members}}}}")
        for group, spec in cfg["groups"].items():
            if not isinstance(group, str) or not NAME_RE.match(group):
                raise _err(path, f"groups.{group}", "group names are lower-case words joined by dashes")
            if group in self.declared:
                raise UserError(f"group {group!r} is declared twice: {self.group_files[group]} and {path}")
            if not isinstance(spec, dict) or set(spec) - {"description", "members"} or "members" not in spec:
                raise _err(path, f"groups.{group}", "must be a mapping with 'members' (and optional 'description')")
            members = spec["members"]
            if isinstance(members, list):
                members = {m: "" for m in members}
            members = _str_map(members, path, f"groups.{group}.members")
            bad = [m for m in members if not NAME_RE.match(m)]
            if bad:
                raise _err(path, f"groups.{group}.members", f"{bad} are not valid task names")
            self.declared[group] = members
            self.group_files[group] = path
            self.descriptions[group] = str(spec.get("description", ""))

    def _check_groups(self) -> None:
        """A task that names a declared group must be listed in it, and a listed, defined task must
        name the group; group names may not shadow task names."""
        tasks = [self.get(n) for n in self.names()]
        for t in tasks:
            for g in t.groups:
                if g in self.declared and t.name not in self.declared[g]:
                    raise UserError(f"{t.file}: key 'groups': {t.name} says it is in {g!r}, but {self.group_files[g]} "
                                    f"does not list it; to join no group set `groups: []` in {Path(t.file).name} "
                                    f"(a copied ODinW task inherits {list(t.groups)}), or list {t.name} under {g!r} there")
        for g, members in self.declared.items():
            for m in members:
                if m in self.registry.module_dict and g not in self.get(m).groups:
                    raise UserError(f"{self.get(m).file}: key 'groups': {self.group_files[g]} lists {m} in {g!r}; add {g!r} to its groups")
        clash = sorted(set(self.groups()) & set(self.registry.module_dict))
        if clash:
            raise UserError(f"names used both as task and group: {clash}")

    def groups(self) -> dict[str, list[str]]:
        """Group -> member task names (declared order for declared groups, including members without
        a YAML yet; otherwise the sorted tasks that name the group)."""
        out = {g: list(m) for g, m in self.declared.items()}
        for n in self.names():
            for g in self.get(n).groups:
                if g not in out:
                    out[g] = []
                if g not in self.declared and n not in out[g]:
                    out[g].append(n)
        return out

    def group_members(self, group: str) -> list[tuple[str, bool]]:
        """(member name, defined?) for each member of a group."""
        groups = self.groups()
        if group not in groups:
            raise unknown_name("group", group, groups)
        return [(m, m in self.registry.module_dict) for m in groups[group]]

    def list(self, group: str | None = None) -> list[Task]:
        if group is None:
            return [self.get(n) for n in self.names()]
        return [self.get(m) for m, defined in self.group_members(group) if defined]

    def resolve(self, spec: str) -> list[Task]:
        """"a,b,odinw13" -> tasks (groups expand; duplicates dropped; order kept). A group with
        members that have no YAML raises, naming them, rather than running a partial group."""
        out: dict[str, Task] = {}
        groups = self.groups()
        for token in [t.strip() for t in spec.split(",") if t.strip()]:
            if token in self.registry.module_dict:
                out.setdefault(token, self.get(token))
            elif token in groups:
                missing = [m for m, ok in self.group_members(token) if not ok]
                if missing:
                    raise UserError(
                        f"group {token!r} has {len(missing)} members without a task YAML: {', '.join(missing)}; "
                        f"add them under {self.directory} or name the defined tasks one by one"
                    )
                for t in self.list(token):
                    out.setdefault(t.name, t)
            else:
                raise unknown_name("task/group name", token, [*self.names(), *groups])
        if not out:
            raise UserError(f"no task named in {spec!r}")
        return list(out.values())


_CACHE: dict[Path, TaskRegistry] = {}


def load_registry(directory: str | os.PathLike | None = None, reload: bool = False) -> TaskRegistry:
    """The (cached) registry of a tasks directory (default: default_tasks_dir())."""
    d = Path(directory) if directory is not None else default_tasks_dir()
    key = d.resolve()
    if reload or key not in _CACHE:
        _CACHE[key] = TaskRegistry(d)
    return _CACHE[key]


def get_task(name: str, tasks_dir: str | os.PathLike | None = None) -> Task:
    return load_registry(tasks_dir).get(name)


def resolve_tasks(spec: str, tasks_dir: str | os.PathLike | None = None) -> list[Task]:
    return load_registry(tasks_dir).resolve(spec)


def all_groups(tasks_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    return load_registry(tasks_dir).groups()
