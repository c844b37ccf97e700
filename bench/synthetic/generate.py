"""Generation of the synthetic world on disk: every task, the pretraining set, manifests.

Each task lives under <data_root>/synthetic/<task>/ and ends with a manifest.json written last; a
task whose manifest holds the same config hash is skipped (idempotent), one whose manifest differs is
removed and written again. Images are seeded per (seed, task, split, index), so any subset of tasks
gives the same files as a full run.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.synthetic import specs
from bench.synthetic.captions import SYNTH_MAX_NEGATIVES, detection_prompt, grounding_caption
from bench.synthetic.concepts import (
    ALL_PAIRS,
    BASE_PAIRS,
    BASE_SHAPES,
    HELD_OUT,
    NOVEL_SHAPES,
    check_split,
    pair_name,
)
from bench.synthetic.scenes import IMAGE_SIZE, SceneObject, ScenePlan, sample_scene
from bench.synthetic.writers import (
    coco_dict,
    dump_json,
    mdetr_dict,
    recall_gt,
    write_entities,
    write_fewshot_files,
    write_png,
)
from bench.util.errors import UserError, unknown_name
from bench.util.io import atomic_write_json, read_json, sha256_file, sha256_json

GENERATOR_VERSION = 2  # bump on any change that alters a generated file
QUICK_SCALE = 0.25
MIN_IMAGES = 8
SPLIT_INDEX = {"train": 0, "val": 1, "test": 2, "pretrain": 3}


def parse_scale(scale: float | str) -> float:
    if scale == "quick":
        return QUICK_SCALE
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise UserError(f"scale must be a positive number or 'quick', got {scale!r}") from None
    if not value > 0:
        raise UserError(f"scale must be a positive number or 'quick', got {scale!r}")
    return value


def scaled(n: int, scale: float) -> int:
    return max(MIN_IMAGES, int(round(n * scale)))


def image_rng(seed: int, task: str, split: str, index: int) -> np.random.Generator:
    """The generator of one image: independent of every other image and of which tasks are generated."""
    return np.random.default_rng([seed, zlib.crc32(task.encode()), SPLIT_INDEX[split], index])


def task_root(data_root: str | Path, task: str) -> Path:
    return Path(data_root) / "synthetic" / task


def _ann_attrs(o: SceneObject) -> dict[str, str]:
    return {"colour": o.colour, "shape": o.shape, "size": o.size}


# ---------------------------------------------------------------------------------------- detection


def _detection_split(spec: specs.DetectionSpec, root: Path, split: str, n: int, seed: int) -> dict:
    split_dir = root / specs.SPLIT_DIRS[split]
    cat_id = {name: k + 1 for k, name in enumerate(spec.classes)}
    images, anns = [], []
    for i in range(n):
        scene = sample_scene(spec.plan, image_rng(seed, spec.name, split, i))
        file_name = f"{i + 1:06d}.png"
        write_png(split_dir / file_name, scene.image)
        images.append({"id": i + 1, "file_name": file_name, "height": IMAGE_SIZE, "width": IMAGE_SIZE})
        for o in scene.objects:
            label = o.shape if spec.label == "shape" else pair_name(o.colour, o.shape)
            if label in cat_id:
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat_id[label],
                             "bbox": list(o.bbox), "area": o.area, "iscrowd": 0, "attributes": _ann_attrs(o)})
    cats = [{"id": k, "name": name, "supercategory": spec.name} for name, k in cat_id.items()]
    coco = coco_dict(images, anns, cats, f"{spec.name} {split}: {spec.description}")
    dump_json(split_dir / "annotations_without_background.json", coco)
    if split in ("train", "val"):
        write_fewshot_files(split_dir, coco, which=split)
    return coco


def _write_detection(spec: specs.DetectionSpec, root: Path, seed: int, scale: float) -> int:
    n_images = 0
    for split, n in spec.counts.items():
        _detection_split(spec, root, split, scaled(n, scale), seed)
        n_images += scaled(n, scale)
    return n_images


# ---------------------------------------------------------------------------------------- grounding


def _grounding_entry(entry_id: int, orig_id: int, sentence_id: int, file_name: str, caption: str,
                     phrases: Iterable, objects: list[SceneObject], source: str | None = None) -> dict:
    out = {
        "id": entry_id, "original_img_id": orig_id, "sentence_id": sentence_id, "file_name": file_name,
        "height": IMAGE_SIZE, "width": IMAGE_SIZE, "caption": caption,
        "phrases": [{"spans": [list(p.span)], "boxes": [list(objects[j].bbox) for j in p.objects],
                     "areas": [objects[j].area for j in p.objects], "type": objects[p.objects[0]].shape}
                    for p in phrases],
    }
    if source is not None:
        out["source"] = source
    return out


def _write_grounding(root: Path, seed: int, scale: float) -> int:
    """MDETR json + Flickr30K Entities files + flickr_recall ground truth, per split."""
    task = "synth-grounding"
    n_images = 0
    for split, n in specs.GROUNDING_COUNTS.items():
        n = scaled(n, scale)
        entries = []
        for i in range(n):
            rng = image_rng(seed, task, split, i)
            scene = sample_scene(specs.GROUNDING_PLAN, rng)
            orig_id = (SPLIT_INDEX[split] + 1) * 100000 + i  # unique over splits, like Flickr ids
            file_name = f"{orig_id}.png"
            write_png(root / "flickr30k-images" / file_name, scene.image)
            for s in range(specs.GROUNDING_CAPTIONS_PER_IMAGE):
                caption, phrases = grounding_caption(scene.objects, rng)
                if not phrases:
                    continue
                entries.append(_grounding_entry(len(entries) + 1, orig_id, s, file_name, caption, phrases,
                                                scene.objects))
        n_images += n
        dump_json(root / "mdetr_annotations" / f"final_flickr_separateGT_{split}.json", mdetr_dict(entries))
        dump_json(root / "mdetr_annotations" / f"flickr_recall_gt_{split}.json", recall_gt(entries))
        write_entities(root / "flickr30k_entities", split, entries)
    return n_images


# ------------------------------------------------------------------------------- referring expressions


def referring_expression(objects: list[SceneObject], index: int) -> str | None:
    """The shortest "the [size] colour shape" naming objects[index] and no other object, or None."""
    obj = objects[index]
    for words in ([obj.colour, obj.shape], [obj.size, obj.colour, obj.shape]):
        same = [o for o in objects if [o.size, o.colour, o.shape][-len(words):] == words]
        if len(same) == 1:
            return " ".join(["the", *words])
    return None


def _write_refexp(root: Path, seed: int, scale: float) -> int:
    """MDETR refexp json (final_refexp_{split}.json): one entry per expression, one referred box each.

    Its own image streams (image_rng(seed, "synth-refexp", ...)): no other task's files change."""
    task = "synth-refexp"
    n_images = 0
    for split, n in specs.REFEXP_COUNTS.items():
        entries = []
        for i in range(scaled(n, scale)):
            rng = image_rng(seed, task, split, i)
            scene = sample_scene(specs.REFEXP_PLAN, rng)
            file_name = f"{split}_{i + 1:06d}.png"
            write_png(root / "images" / file_name, scene.image)
            named = [(j, e) for j in rng.permutation(len(scene.objects))
                     if (e := referring_expression(scene.objects, int(j))) is not None]
            for s, (j, expression) in enumerate(named[: specs.REFEXP_PER_IMAGE]):
                o = scene.objects[int(j)]
                entries.append({"id": len(entries) + 1, "original_img_id": i + 1, "sentence_id": s,
                                "file_name": file_name, "height": IMAGE_SIZE, "width": IMAGE_SIZE,
                                "caption": expression, "phrases": [{"spans": [[0, len(expression)]], "boxes": [list(o.bbox)],
                                                                    "areas": [o.area], "type": o.shape}]})
            n_images += 1
        dump_json(root / "mdetr_annotations" / f"final_refexp_{split}.json", mdetr_dict(entries))
    return n_images


# --------------------------------------------------------------------------------------------- LVIS


def _write_lvis(root: Path, seed: int, scale: float) -> int:
    task = "synth-lvis"
    cat_id = {pair: k + 1 for k, pair in enumerate(ALL_PAIRS)}
    freq = {pair: specs.lvis_frequency(*pair) for pair in ALL_PAIRS}
    plan = ScenePlan(targets=ALL_PAIRS, num_objects=(2, 7),
                     target_weights=tuple(specs.LVIS_GROUP_WEIGHT[freq[p]] for p in ALL_PAIRS))
    splits: dict[str, tuple[list, list]] = {}
    for split, n in specs.LVIS_COUNTS.items():
        images, anns = [], []
        for i in range(scaled(n, scale)):
            rng = image_rng(seed, task, split, i)
            scene = sample_scene(plan, rng)
            file_name = f"{i + 1:06d}.png"
            write_png(root / "images" / split / file_name, scene.image)
            by_cat: dict[int, list[SceneObject]] = {}
            for o in scene.objects:
                by_cat.setdefault(cat_id[(o.colour, o.shape)], []).append(o)
            not_exhaustive = []
            for c in sorted(by_cat):  # federated: some classes are not exhaustively annotated
                if len(by_cat[c]) >= 2 and rng.random() < specs.LVIS_NOT_EXHAUSTIVE_PROB:
                    by_cat[c] = by_cat[c][:-1]
                    not_exhaustive.append(c)
            present = set(by_cat)
            images.append({"id": i + 1, "file_name": file_name, "height": IMAGE_SIZE, "width": IMAGE_SIZE,
                           "coco_url": f"synthetic://synth-lvis/{split}/{file_name}",
                           "neg_category_ids": _lvis_negatives(present, rng),
                           "not_exhaustive_category_ids": not_exhaustive})
            for c in sorted(by_cat):
                for o in by_cat[c]:
                    anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c, "bbox": list(o.bbox),
                                 "area": o.area, "iscrowd": 0, "attributes": _ann_attrs(o)})
        splits[split] = (images, anns)
    train_anns = splits["train"][1]
    inst = Counter(a["category_id"] for a in train_anns)
    imgs = Counter(c for c, _ in {(a["category_id"], a["image_id"]) for a in train_anns})
    cats = [{"id": k, "name": f"{c}_{s}", "synonyms": [f"{c}_{s}"], "synset": f"{c}_{s}.n.01",
             "def": f"a {c} {s}", "frequency": freq[(c, s)], "image_count": imgs[k], "instance_count": inst[k]}
            for (c, s), k in cat_id.items()]
    for split, (images, anns) in splits.items():
        lvis = {"info": {"description": f"{task} {split}", "version": "1"}, "licenses": [],
                "images": images, "annotations": anns, "categories": cats}
        dump_json(root / "annotations" / f"lvis_{split}.json", lvis)
    return sum(len(images) for images, _ in splits.values())


def _lvis_negatives(present: set[int], rng: np.random.Generator) -> list[int]:
    """Verified-absent classes: half confusers (same colour or shape as a present class), half random."""
    pairs = {k + 1: p for k, p in enumerate(ALL_PAIRS)}
    absent = [c for c in pairs if c not in present]
    colours = {pairs[c][0] for c in present}
    shapes = {pairs[c][1] for c in present}
    near = [c for c in absent if pairs[c][0] in colours or pairs[c][1] in shapes]
    half = specs.LVIS_NUM_NEGATIVES // 2
    chosen = set(rng.choice(near, size=min(half, len(near)), replace=False).tolist()) if near else set()
    rest = [c for c in absent if c not in chosen]
    k = min(specs.LVIS_NUM_NEGATIVES - len(chosen), len(rest))
    chosen |= set(rng.choice(rest, size=k, replace=False).tolist()) if k else set()
    return sorted(int(c) for c in chosen)


# ------------------------------------------------------------------------------------- pretraining


def _iter_pretraining(seed: int, scale: float) -> Iterator[tuple[int, np.ndarray, list[SceneObject], list[dict]]]:
    """(index, image, objects, entries) per pretraining image: one grounding caption and one detection prompt.

    Detection prompts name objects either by shape ("star") or by colour-shape ("red star"), from the
    base vocabulary only, with GLIP's sampled negatives
    (maskrcnn_benchmark/data/datasets/od_to_grounding.py).
    """
    shape_vocab = list(BASE_SHAPES)
    pair_vocab = [pair_name(c, s) for c, s in BASE_PAIRS]
    for i in range(scaled(specs.PRETRAIN_IMAGES, scale)):
        rng = image_rng(seed, "pretrain", "pretrain", i)
        crowded = rng.random() < specs.PRETRAIN_CROWDED_PROB
        scene = sample_scene(specs.PRETRAIN_CROWDED_PLAN if crowded else specs.PRETRAIN_PLAN, rng)
        file_name = f"{i + 1:06d}.png"
        caption, phrases = grounding_caption(scene.objects, rng)
        entries = []
        if phrases:
            entries.append(_grounding_entry(2 * i + 1, i + 1, 0, file_name, caption, phrases, scene.objects,
                                            source="grounding"))
        by_shape = rng.random() < 0.5
        labels = [o.shape if by_shape else pair_name(o.colour, o.shape) for o in scene.objects]
        if labels:
            det_caption, spans = detection_prompt(labels, shape_vocab if by_shape else pair_vocab, rng, SYNTH_MAX_NEGATIVES)
            det_phrases = []
            for name in sorted(set(labels)):
                idx = [j for j, lab in enumerate(labels) if lab == name]
                det_phrases.append({"spans": [list(spans[name])], "boxes": [list(scene.objects[j].bbox) for j in idx],
                                    "areas": [scene.objects[j].area for j in idx], "type": scene.objects[idx[0]].shape})
            det_phrases.sort(key=lambda p: p["spans"][0][0])  # phrase order = order in the caption
            entries.append({"id": 2 * i + 2, "original_img_id": i + 1, "sentence_id": 1, "file_name": file_name,
                            "height": IMAGE_SIZE, "width": IMAGE_SIZE, "caption": det_caption,
                            "phrases": det_phrases, "source": "detection"})
        yield i, scene.image, scene.objects, entries


def pretraining_entries(seed: int = 0, scale: float | str = 1.0) -> list[dict]:
    """The pretraining entries (no pixels), as written to final_synth_pretrain.json before flattening.

    entry: {"id", "original_img_id", "sentence_id", "file_name", "height", "width", "caption",
            "source": "grounding" | "detection",
            "phrases": [{"spans": [[s, e]], "boxes": [[x, y, w, h], ...], "areas": [...], "type": shape}]}
    """
    return [e for _, _, _, entries in _iter_pretraining(seed, parse_scale(scale)) for e in entries]


def pretraining_paths(data_root: str | Path) -> tuple[Path, Path]:
    """(grounding json, image root) of the written pretraining set: the arguments bench.runs.train.pretrain takes.

    Raises a UserError naming the command to run when the set has not been generated.
    """
    root = task_root(data_root, "pretrain")
    json_path = root / "mdetr_annotations" / "final_synth_pretrain.json"
    if not (root / "manifest.json").is_file() or not json_path.is_file():
        raise UserError(f"the synthetic pretraining set is not at {root}; write it with "
                        f"`python -m bench.synthetic --data-root {data_root} --tasks pretrain` (or glip-bench demo)")
    return json_path, root / "images"


def _write_pretraining(root: Path, seed: int, scale: float) -> int:
    entries, images, anns = [], [], []
    cat_id = {pair: k + 1 for k, pair in enumerate(BASE_PAIRS)}
    n = 0
    for i, image, objects, item_entries in _iter_pretraining(seed, scale):
        write_png(root / "images" / f"{i + 1:06d}.png", image)
        entries.extend(item_entries)
        images.append({"id": i + 1, "file_name": f"{i + 1:06d}.png", "height": IMAGE_SIZE, "width": IMAGE_SIZE})
        for o in objects:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat_id[(o.colour, o.shape)],
                         "bbox": list(o.bbox), "area": o.area, "iscrowd": 0, "attributes": _ann_attrs(o)})
        n += 1
    mdetr = mdetr_dict(entries)
    for rec, e in zip(mdetr["images"], entries):
        rec["source"] = e["source"]
    dump_json(root / "mdetr_annotations" / "final_synth_pretrain.json", mdetr)
    cats = [{"id": k, "name": pair_name(c, s), "supercategory": s} for (c, s), k in cat_id.items()]
    dump_json(root / "detection_train.json", coco_dict(images, anns, cats, "synthetic pretraining (base concepts)"))
    return n


# ------------------------------------------------------------------------------------------ driver


def concept_split() -> dict[str, Any]:
    """The concept split as data (written to <data_root>/synthetic/concepts.json)."""
    return {
        "base_shapes": list(BASE_SHAPES),
        "novel_shapes": list(NOVEL_SHAPES),
        "held_out_compositions": [pair_name(c, s) for c, s in HELD_OUT],
        "base_pairs": [pair_name(c, s) for c, s in BASE_PAIRS],
    }


def _config(task: str, seed: int, scale: float) -> dict[str, Any]:
    if task in specs.DETECTION_TASKS:
        spec: Any = dataclasses.asdict(specs.DETECTION_TASKS[task])
    elif task == "synth-grounding":
        spec = {"plan": dataclasses.asdict(specs.GROUNDING_PLAN), "counts": specs.GROUNDING_COUNTS,
                "captions": specs.GROUNDING_CAPTIONS_PER_IMAGE}
    elif task == "synth-refexp":
        spec = {"plan": dataclasses.asdict(specs.REFEXP_PLAN), "counts": specs.REFEXP_COUNTS,
                "per_image": specs.REFEXP_PER_IMAGE}
    elif task == "synth-lvis":
        spec = {"counts": specs.LVIS_COUNTS, "weights": specs.LVIS_GROUP_WEIGHT,
                "not_exhaustive": specs.LVIS_NOT_EXHAUSTIVE_PROB, "negatives": specs.LVIS_NUM_NEGATIVES}
    else:
        spec = {"images": specs.PRETRAIN_IMAGES, "plan": dataclasses.asdict(specs.PRETRAIN_PLAN),
                "crowded": dataclasses.asdict(specs.PRETRAIN_CROWDED_PLAN), "p": specs.PRETRAIN_CROWDED_PROB}
    return {"generator_version": GENERATOR_VERSION, "task": task, "seed": seed, "scale": scale,
            "image_size": IMAGE_SIZE, "concepts": concept_split(), "spec": spec}


def _write_task(task: str, root: Path, seed: int, scale: float) -> int:
    if task in specs.DETECTION_TASKS:
        return _write_detection(specs.DETECTION_TASKS[task], root, seed, scale)
    if task == "synth-grounding":
        return _write_grounding(root, seed, scale)
    if task == "synth-lvis":
        return _write_lvis(root, seed, scale)
    if task == "synth-refexp":
        return _write_refexp(root, seed, scale)
    return _write_pretraining(root, seed, scale)


def generate(
    data_root: str | Path, seed: int = 0, scale: float | str = 1.0, tasks: Iterable[str] | None = None
) -> dict[str, Any]:
    """Write the synthetic world under <data_root>/synthetic/ and return what was done.

    tasks: names from ALL_TASKS (default: all, pretraining set included). A task whose manifest has the
    same config hash is skipped. Returns {"data_root", "seed", "scale", "seconds", "cpu_seconds", "tasks": {name:
    {"root", "skipped", "seconds", "images", "config_hash", "files": {relative path: sha256}}}}.
    """
    check_split()
    scale_value = parse_scale(scale)
    names = list(specs.ALL_TASKS) if tasks is None else list(tasks)
    for name in names:
        if name not in specs.ALL_TASKS:
            raise unknown_name("synthetic task", name, specs.ALL_TASKS)
    start, cpu_start = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {"data_root": str(data_root), "seed": seed, "scale": scale_value, "tasks": {}}
    dump_json(Path(data_root) / "synthetic" / "concepts.json", concept_split())
    for name in names:
        t0 = time.perf_counter()
        root = task_root(data_root, name)
        config = _config(name, seed, scale_value)
        config_hash = sha256_json(config)[:16]
        manifest_path = root / "manifest.json"
        if manifest_path.is_file():
            manifest = read_json(manifest_path)
            if manifest.get("config_hash") == config_hash and all((root / f).is_file() for f in manifest["files"]):
                out["tasks"][name] = {"root": str(root), "skipped": True, "seconds": time.perf_counter() - t0,
                                      "images": manifest["images"], "config_hash": config_hash,
                                      "files": manifest["files"]}
                continue
            shutil.rmtree(root)  # ours (it has our manifest) but stale: rewrite from scratch
        n_images = _write_task(name, root, seed, scale_value)
        files = {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*.json"))}
        manifest = {"config_hash": config_hash, "config": config, "images": n_images, "files": files}
        atomic_write_json(manifest_path, manifest)
        out["tasks"][name] = {"root": str(root), "skipped": False, "seconds": time.perf_counter() - t0,
                              "images": n_images, "config_hash": config_hash, "files": files}
    out["seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = time.process_time() - cpu_start
    return out
