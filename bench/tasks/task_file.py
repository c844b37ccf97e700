"""Task files: the YAML schema of a task and its checks; every problem names the file and the key.

Tasks are data (tasks/**/*.yaml, read with PyYAML's safe loader; `_base_` inheritance follows mmengine's
merge rule). Every file is
checked against `SCHEMA`: unknown keys, missing keys, wrong types, and duplicate keys raise a UserError
naming the file, the key and, where it helps, the line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bench.tasks.task import PROMPT_SET_KEYS, SplitFiles, Task
from bench.util.errors import UserError
from bench.util.shipped import shipped_dir

FORMATS = ("coco", "lvis", "mdetr_flickr", "mdetr_refexp")
METRICS = ("coco_bbox", "lvis_fixed_ap", "lvis_bbox", "flickr_recall", "ov_coco_bbox", "ov_lvis_fixed_ap",
           "rec_accuracy", "grec_accuracy")
METRICS_BY_FORMAT = {"coco": ("coco_bbox", "ov_coco_bbox"), "lvis": ("lvis_fixed_ap", "lvis_bbox", "ov_lvis_fixed_ap"),
                     "mdetr_flickr": ("flickr_recall",), "mdetr_refexp": ("rec_accuracy", "grec_accuracy")}
TRAIN_PROMPT_DEFAULTS = {"negatives": 85, "all_negatives_prob": 0.5}  # = bench.data.od_captions.DEFAULTS
OPEN_VOCAB_METRICS = ("ov_coco_bbox", "ov_lvis_fixed_ap")  # need an open_vocab block, and only they take one
FREQUENCIES = ("r", "c", "f")
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
    "extra_metrics": (False, []),  # bench.metrics.extras names (nms-ap, f1, tide, per-class)
    "ann_sha256": (False, {}),
    # class names allowed to give the same prompt as an earlier class, because the official config prompts
    # them so (ODinW-35 boggleBoards: "Q"/"q", "o"/"o "); any other collision is an error
    "shared_prompts": (False, []),
    # open-vocabulary split: {base, novel: names or {frequency: [r|c|f]}, drop_empty_images: bool}
    "open_vocab": (False, None),
    # training captions: null = the one fixed class caption; {rule: sampled, negatives, all_negatives_prob} =
    # per-image captions of the image's classes plus sampled negatives (bench.data.od_captions; chunked tasks)
    "train_prompt": (False, None),
}


# ---- validation -------------------------------------------------------------------------------
def key_error(path: Path, key: str, msg: str) -> UserError:
    return UserError(f"{path}: key {key!r}: {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def str_map(value: Any, path: Path, key: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise key_error(path, key, f"must be a mapping, got {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise key_error(path, key, f"entries must map strings to strings; got {k!r}: {v!r} (quote numbers/yes/no in YAML)")
    return dict(value)


def _check_inside(value: str, path: Path, key: str, where: str) -> None:
    """A path in a task file stays inside `where`: not absolute, no `..` part (task files are shared, and a
    task may only read its own data)."""
    if os.path.isabs(value) or value.startswith("~") or ".." in Path(value).parts:
        raise key_error(path, key, f"must be a path inside {where} (relative, without '..'), got {value!r}")


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
            raise key_error(path, key, f"must be a non-empty string, got {c[key]!r}")
    if not NAME_RE.match(c["name"]):
        raise key_error(path, "name", f"{c['name']!r} must be lower-case words joined by dashes (e.g. odinw-aquarium)")
    if not _is_int(c["version"]) or c["version"] < 1:
        raise key_error(path, "version", f"must be an integer >= 1, got {c['version']!r}")
    if c["format"] not in FORMATS:
        raise key_error(path, "format", f"{c['format']!r} is not one of {FORMATS}")
    if c["metric"] not in METRICS_BY_FORMAT[c["format"]]:
        raise key_error(path, "metric", f"{c['metric']!r} does not fit format {c['format']!r}; use one of {METRICS_BY_FORMAT[c['format']]}")
    _check_extra_metrics(c["extra_metrics"], c["format"], path)
    _check_inside(c["root"], path, "root", "the data root")
    if not isinstance(c["groups"], list) or not all(isinstance(g, str) and NAME_RE.match(g) for g in c["groups"]):
        raise key_error(path, "groups", f"must be a list of lower-case names, got {c['groups']!r}")

    if not isinstance(c["splits"], dict) or not c["splits"]:
        raise key_error(path, "splits", "must be a non-empty mapping split -> {ann, images}")
    splits: dict[str, SplitFiles] = {}
    for split, files in c["splits"].items():
        k = f"splits.{split}"
        if not isinstance(split, str) or not SPLIT_RE.match(split):
            raise key_error(path, k, "split names are lower-case letters, digits and _")
        if not isinstance(files, dict):
            raise key_error(path, k, f"must be a mapping with ann and images, got {files!r}")
        allowed = {"ann", "images", "entities"} if c["format"] == "mdetr_flickr" else {"ann", "images"}
        bad = sorted(set(files) - allowed)
        if bad:
            raise key_error(path, k, f"unknown keys {bad}; valid: {sorted(allowed)}")
        need = ["ann", "images"] + (["entities"] if c["format"] == "mdetr_flickr" else [])
        for n in need:
            if not isinstance(files.get(n), str) or not files[n]:
                raise key_error(path, f"{k}.{n}", "missing or not a string (a path relative to root)")
            _check_inside(files[n], path, f"{k}.{n}", "the task root")
        splits[split] = SplitFiles(files["ann"], files["images"], files.get("entities"))
    c["finetune_split"] = c["finetune_split"] if c["finetune_split"] is not None else c["eval_split"]
    for key in ("eval_split", "finetune_split"):
        if c[key] not in splits:
            raise key_error(path, key, f"{c[key]!r} is not one of the splits {list(splits)}")

    fewshot = str_map(c["fewshot"], path, "fewshot")
    for which, pattern in fewshot.items():
        if which not in splits:
            raise key_error(path, f"fewshot.{which}", f"is not one of the splits {list(splits)}")
        if "{shots}" not in pattern or "{seed}" not in pattern:
            raise key_error(path, f"fewshot.{which}", f"{pattern!r} must contain {{shots}} and {{seed}}")
        _check_inside(pattern, path, f"fewshot.{which}", "the task root")

    classes = c["classes"]
    if classes is not None:
        if not isinstance(classes, list) or not classes or not all(isinstance(x, str) and x for x in classes):
            raise key_error(path, "classes", "must be a non-empty list of strings (quote names such as '0' or 'no'), or null")
        dup = sorted({x for x in classes if classes.count(x) > 1})
        if dup:
            raise key_error(path, "classes", f"duplicate names {dup}")
        shared = c["shared_prompts"]
        if not isinstance(shared, list) or not all(isinstance(x, str) and x in classes for x in shared):
            raise key_error(path, "shared_prompts", f"must be a list of names from classes, got {shared!r}")
        _check_prompt_collisions(classes, path, set(shared))
    renames = str_map(c["renames"], path, "renames")

    psets = c["prompt_sets"]
    if not isinstance(psets, dict) or "plain" not in psets:
        raise key_error(path, "prompt_sets", "must be a mapping that includes 'plain' (the class names as they are)")
    prompt_sets: dict[str, dict[str, dict[str, str]]] = {}
    for pname, pset in psets.items():
        k = f"prompt_sets.{pname}"
        if not isinstance(pname, str) or not NAME_RE.match(pname):
            raise key_error(path, k, "prompt set names are lower-case words joined by dashes")
        pset = {} if pset is None else pset
        if not isinstance(pset, dict):
            raise key_error(path, k, f"must be a mapping with keys {PROMPT_SET_KEYS}, got {pset!r}")
        bad = sorted(set(pset) - set(PROMPT_SET_KEYS))
        if bad:
            raise key_error(path, k, f"unknown keys {bad}; valid: {PROMPT_SET_KEYS}")
        prompt_sets[pname] = {pk: str_map(pv or {}, path, f"{k}.{pk}") for pk, pv in pset.items()}
        if classes is not None:
            known = set(classes)
            for pk, mapping in prompt_sets[pname].items():
                stray = sorted(set(mapping) - known)
                if stray:
                    raise key_error(path, f"{k}.{pk}", f"names {stray} are not in classes {classes}")

    if c["chunk_size"] is not None and (not _is_int(c["chunk_size"]) or c["chunk_size"] < 1):
        raise key_error(path, "chunk_size", f"must be a positive integer or null, got {c['chunk_size']!r}")
    if not _is_int(c["detections_per_image"]) or c["detections_per_image"] < 1:
        raise key_error(path, "detections_per_image", f"must be a positive integer, got {c['detections_per_image']!r}")
    sha = str_map(c["ann_sha256"], path, "ann_sha256")
    for split, h in sha.items():
        if split not in splits or not SHA256_RE.match(h):
            raise key_error(path, f"ann_sha256.{split}", "keys are split names, values 64 lower-case hex digits")

    open_vocab = _open_vocab(c["open_vocab"], c["metric"], c["format"], path)
    if open_vocab is not None and classes is not None:
        raise key_error(path, "open_vocab", "needs `classes: null` (base and novel are annotation-file names, and a "
                        "base-only view has fewer categories than a listed `classes`)")
    return Task(
        name=c["name"], version=c["version"], description=c["description"], source=c["source"],
        groups=tuple(c["groups"]), format=c["format"], root=c["root"], splits=splits,
        eval_split=c["eval_split"], finetune_split=c["finetune_split"], fewshot=fewshot,
        classes=None if classes is None else tuple(classes), renames=renames, prompt_sets=prompt_sets,
        separator=c["separator"], chunk_size=c["chunk_size"], detections_per_image=c["detections_per_image"],
        metric=c["metric"], ann_sha256=sha, open_vocab=open_vocab, file=path,
        extra_metrics=tuple(c["extra_metrics"]),
        train_prompt=None if c["train_prompt"] is None else _train_prompt(c["train_prompt"], path),
    )


def _check_extra_metrics(names: Any, fmt: str, path: Path) -> None:
    from bench.metrics.extras import EXTRA_METRICS

    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise key_error(path, "extra_metrics", f"must be a list of names, got {names!r}")
    bad = [n for n in names if n not in EXTRA_METRICS]
    if bad:
        raise key_error(path, "extra_metrics", f"{bad} unknown; valid: {', '.join(EXTRA_METRICS)}")
    if names and fmt == "mdetr_flickr":
        raise key_error(path, "extra_metrics", "grounding tasks have none (they score boxes with classes)")
    if len(set(names)) != len(names):
        raise key_error(path, "extra_metrics", f"{names} repeats a name")


def _open_vocab(block: Any, metric: str, fmt: str, path: Path) -> dict[str, Any] | None:
    """The checked open_vocab block: base and novel as name lists (or LVIS frequency groups)."""
    if (block is None) != (metric not in OPEN_VOCAB_METRICS):
        raise key_error(path, "open_vocab", f"metric {metric!r} {'needs' if block is None else 'takes no'} "
                        f"open_vocab block (open-vocabulary metrics: {OPEN_VOCAB_METRICS})")
    if block is None:
        return None
    if not isinstance(block, dict) or set(block) - {"base", "novel", "drop_empty_images"} or not {"base", "novel"} <= set(block):
        raise key_error(path, "open_vocab", "must be a mapping with base, novel and optional drop_empty_images")
    out: dict[str, Any] = {"drop_empty_images": block.get("drop_empty_images", False)}
    if not isinstance(out["drop_empty_images"], bool):
        raise key_error(path, "open_vocab.drop_empty_images", "must be true or false")
    for key in ("base", "novel"):
        rule = block[key]
        if isinstance(rule, dict):
            freqs = rule.get("frequency")
            if fmt != "lvis" or set(rule) != {"frequency"} or not isinstance(freqs, list) or not freqs \
                    or not set(freqs) <= set(FREQUENCIES):
                raise key_error(path, f"open_vocab.{key}", f"a frequency rule is {{frequency: [r|c|f, ...]}} "
                                f"(LVIS tasks only), got {rule!r}")
            out[key] = {"frequency": list(freqs)}
        elif isinstance(rule, list) and rule and all(isinstance(n, str) and n for n in rule):
            dup = sorted({n for n in rule if rule.count(n) > 1})
            if dup:
                raise key_error(path, f"open_vocab.{key}", f"duplicate names {dup}")
            out[key] = list(rule)
        else:
            raise key_error(path, f"open_vocab.{key}", f"must be a non-empty list of class names or a frequency rule, got {rule!r}")
    if isinstance(out["base"], list) and isinstance(out["novel"], list):
        both = sorted(set(out["base"]) & set(out["novel"]))
        if both:
            raise key_error(path, "open_vocab", f"classes {both} are both base and novel")
    elif isinstance(out["base"], dict) and isinstance(out["novel"], dict):
        both = sorted(set(out["base"]["frequency"]) & set(out["novel"]["frequency"]))
        if both:
            raise key_error(path, "open_vocab", f"frequency groups {both} are both base and novel")
    return out


def _train_prompt(block: Any, path: Path) -> dict[str, Any]:
    """The checked train_prompt block: {rule: sampled, negatives: int >= 0, all_negatives_prob: 0..1}
    (bench.data.od_captions; the defaults are the official O365 pre-training settings)."""
    if not isinstance(block, dict) or block.get("rule") != "sampled" or set(block) - {"rule", *TRAIN_PROMPT_DEFAULTS}:
        raise key_error(path, "train_prompt", f"must be a mapping {{rule: sampled, negatives: N, all_negatives_prob: "
                        f"P}} (N and P optional, defaults {TRAIN_PROMPT_DEFAULTS}), got {block!r}")
    out = {"rule": "sampled", **TRAIN_PROMPT_DEFAULTS, **{k: v for k, v in block.items() if k != "rule"}}
    if not _is_int(out["negatives"]) or out["negatives"] < 0:
        raise key_error(path, "train_prompt.negatives", f"must be an integer >= 0, got {out['negatives']!r}")
    prob = out["all_negatives_prob"]
    if not isinstance(prob, (int, float)) or isinstance(prob, bool) or not 0.0 <= prob <= 1.0:
        raise key_error(path, "train_prompt.all_negatives_prob", f"must be a number in [0, 1], got {prob!r}")
    return {**out, "all_negatives_prob": float(prob)}


def prompt_key(name: str) -> str:
    """What a class name becomes in the uncased caption: clean_name, lower-cased, spaces collapsed."""
    from glip.prompts import clean_name

    return " ".join(clean_name(name).lower().split())


def _check_prompt_collisions(classes: list[str], path: Path, shared: set[str] = frozenset()) -> None:
    """Two classes whose prompts are the same words cannot be told apart by the model: an error, unless
    the later one is listed in `shared_prompts` (the official config prompts them alike)."""
    seen: dict[str, int] = {}
    lines = _yaml_item_lines(path, "classes")
    for i, name in enumerate(classes):
        key = prompt_key(name)
        if key in seen and name not in shared:
            j = seen[key]
            where = f"{path}:{lines[i]}" if len(lines) == len(classes) else str(path)
            raise UserError(f"{where}: key 'classes': {classes[j]!r} and {name!r} give the same prompt {key!r} "
                            "(BERT is uncased and clean_name maps '_' to ' '); rename one of them, or list the second in shared_prompts if the official config prompts both")
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


BASE_KEY = "_base_"
DELETE_KEY = "_delete_"


def _safe_yaml(path: Path) -> Any:
    """One YAML file read with PyYAML's safe loader: plain data only. A tag such as `!!python/object/apply`
    is refused by name before anything is built from it (task folders are what users share)."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.constructor.ConstructorError as e:
        raise UserError(f"cannot read task file {path}: {e.problem} at line {e.problem_mark.line + 1 if e.problem_mark else '?'}; "
                        "task files are plain YAML data (no !!python/... or other tags): remove the tag") from e
    except yaml.YAMLError as e:
        raise UserError(f"cannot read task file {path}: {e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read task file {path}: {type(e).__name__}: {e}") from e


def merge_into(child: Any, base: Any) -> Any:
    """mmengine's `_base_` rule: mappings merge key by key (the child wins), `_delete_: true` in a child
    mapping drops the base's keys there, anything else in the child replaces the base's value."""
    if not isinstance(child, dict):
        return child
    child = dict(child)
    if not isinstance(base, dict) or child.pop(DELETE_KEY, False):
        child.pop(DELETE_KEY, None)
        return {k: merge_into(v, None) for k, v in child.items()}
    out = dict(base)
    for k, v in child.items():
        out[k] = merge_into(v, base.get(k))
    return out


def shipped_tasks_dir() -> Path:
    """The shipped task YAMLs: the checkout's tasks/, else the installed bench/task_files."""
    return shipped_dir("tasks", "task_files")


def _base_path(path: Path, name: str) -> Path:
    """A `_base_` entry: relative to the file naming it, else a shipped base by its path under the shipped
    tasks (`odinw/_base.yaml`), so a task copied into a folder of one's own can keep the shipped base."""
    beside = path.parent / name
    if beside.is_file():
        return beside
    shipped = shipped_tasks_dir() / name
    if shipped.is_file() and not Path(name).is_absolute():
        return shipped
    bases = sorted(str(p.relative_to(shipped_tasks_dir())) for p in shipped_tasks_dir().rglob("_base.yaml"))
    raise key_error(path, BASE_KEY, f"{name!r} is neither beside the file nor a shipped base; a task copied from "
                    f"the shipped ones names its base by its shipped path: {', '.join(bases)}")


def read_task_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A task file as a dict, with its `_base_` file(s) (paths relative to it, or shipped bases such as
    odinw/_base.yaml) merged in as mmengine would. Parsed with the safe loader only: no code runs from it."""
    path = Path(path)
    if path.resolve() in _seen:
        raise UserError(f"{path}: key {BASE_KEY!r}: the bases form a cycle: {' -> '.join(map(str, (*_seen, path.resolve())))}")
    if not path.is_file():
        raise UserError(f"cannot read task file {path}: not found")
    cfg = _safe_yaml(path)
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: a task file must hold a mapping, got {type(cfg).__name__}")
    bases = cfg.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise key_error(path, BASE_KEY, f"must be a file name or a list of file names, got {bases!r}")
    merged: dict[str, Any] = {}
    for b in bases:
        base = read_task_yaml(_base_path(path, b), (*_seen, path.resolve()))
        clash = sorted(set(merged) & set(base))
        if clash:
            raise key_error(path, BASE_KEY, f"keys {clash} are given by more than one base file; keep them in one")
        merged.update(base)
    return merge_into(cfg, merged)
