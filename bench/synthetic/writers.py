"""Writers of the real file formats, so the real loaders and metrics read the synthetic world.

- COCO detection json (Roboflow / ODinW export: `annotations_without_background.json`, ids 1..K)
- ODinW few-shot split files (`fewshot_train_shot{k}_seed{s}.json`), sampled as the official code does
- MDETR grounding json (`final_flickr_separateGT_*.json`) plus Flickr30K Entities Sentences/Annotations
- LVIS json (federated: neg_category_ids, not_exhaustive_category_ids, frequency)

Every json is dumped with sorted keys and fixed separators, and holds integers only (boxes are
pixel-inclusive integers), so one seed gives byte-identical files on any machine.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

FEWSHOT_SHOTS = (1, 3, 5, 10)
FEWSHOT_SEEDS = (3, 30, 300)  # the official pre-sampled seeds (official tools/finetune.py --shuffle_seeds)


def dump_json(path: Path, obj: Any) -> None:
    """Deterministic json: sorted keys, compact fixed separators, trailing newline."""
    write_bytes(path, (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """A plain write (no fsync: thousands of small files). A task is complete only once generate.py has
    written its manifest, atomically, after every other file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_png(path: Path, image: np.ndarray) -> None:
    """A PNG written deterministically (no metadata, fixed compression level)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG", compress_level=1)


def coco_dict(
    images: Sequence[dict], annotations: Sequence[dict], categories: Sequence[dict], description: str
) -> dict:
    """A COCO detection dict (Roboflow export layout; no dates, so it is reproducible)."""
    return {
        "info": {"description": description, "version": "1"},
        "licenses": [],
        "images": list(images),
        "annotations": list(annotations),
        "categories": list(categories),
    }


def fewshot_subset(coco: dict, shots: int, seed: int) -> dict:
    """The official k-shot subset of a COCO dict (official maskrcnn_benchmark/data/datasets/coco.py,
    COCODataset).

    Image ids (sorted) are shuffled with random.Random(seed); an image is kept when any of its
    categories still has quota; each kept image lowers the quota of every category it contains by one
    (image-level counting). So every category reaches `shots` images when the data allow, and each
    kept image was needed when it was taken.
    """
    cats_of: dict[int, set[int]] = {img["id"]: set() for img in coco["images"]}
    for ann in coco["annotations"]:
        cats_of[ann["image_id"]].add(ann["category_id"])
    quota = {c["id"]: shots for c in coco["categories"]}
    ids = sorted(cats_of)
    random.Random(seed).shuffle(ids)
    keep: set[int] = set()
    for img_id in ids:
        cats = cats_of[img_id]
        if any(quota[c] > 0 for c in cats):
            keep.add(img_id)
            for c in cats:
                quota[c] -= 1
    out = dict(coco)
    out["images"] = [img for img in coco["images"] if img["id"] in keep]
    out["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    return out


def write_fewshot_files(split_dir: Path, coco: dict, which: str) -> list[Path]:
    """fewshot_{which}_shot{k}_seed{s}.json for every official k and seed, next to the split's json."""
    paths = []
    for k in FEWSHOT_SHOTS:
        for s in FEWSHOT_SEEDS:
            path = split_dir / f"fewshot_{which}_shot{k}_seed{s}.json"
            dump_json(path, fewshot_subset(coco, k, s))
            paths.append(path)
    return paths


def mdetr_dict(entries: Sequence[dict]) -> dict:
    """MDETR grounding json from entries.

    entry: {"id", "file_name", "height", "width", "caption", "original_img_id", "sentence_id",
            "phrases": [{"spans": [[s, e]], "boxes": [[x, y, w, h], ...], "areas": [...], "type": str}]}
    One `images` record per (image, caption) with tokens_positive_eval (one span list per phrase); one
    `annotations` record per (phrase, box) with tokens_positive and phrase_ids (the phrase's index).
    """
    images, anns = [], []
    for e in entries:
        images.append({
            "id": e["id"],
            "file_name": e["file_name"],
            "height": e["height"],
            "width": e["width"],
            "caption": e["caption"],
            "dataset_name": "synth",
            "original_img_id": e["original_img_id"],
            "sentence_id": e["sentence_id"],
            "tokens_negative": [[0, len(e["caption"])]],
            "tokens_positive_eval": [p["spans"] for p in e["phrases"]],
        })
        for p_idx, p in enumerate(e["phrases"]):
            for box, area in zip(p["boxes"], p["areas"]):
                anns.append({
                    "id": len(anns) + 1,
                    "image_id": e["id"],
                    "category_id": 1,
                    "bbox": list(box),
                    "area": area,
                    "iscrowd": 0,
                    "tokens_positive": p["spans"],
                    "phrase_ids": p_idx,
                })
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "object", "supercategory": "object"}]}


def recall_gt(entries: Sequence[dict]) -> list[dict]:
    """Ground truth of the flickr_recall metric (docs/formats.md section 2): legacy inclusive xyxy boxes."""
    out = []
    for e in entries:
        phrases = []
        for p_idx, p in enumerate(e["phrases"]):
            boxes = [[x, y, x + w - 1, y + h - 1] for x, y, w, h in p["boxes"]]
            phrases.append({"phrase_id": p_idx, "boxes": boxes, "types": [p["type"]]})
        out.append({"image_id": e["id"], "phrases": phrases})
    return out


def write_entities(entities_dir: Path, split: str, entries: Sequence[dict]) -> None:
    """Flickr30K Entities layout: Sentences/<img>.txt, Annotations/<img>.xml and <split>.txt.

    A sentence line brackets each phrase as "[/EN#<entity>/<type> words]"; removing the brackets gives
    the caption back. An entity is a set of objects; the same set in two captions of one image gets
    the same entity id, as in Flickr30K Entities.
    """
    by_image: dict[int, list[dict]] = {}
    for e in entries:
        by_image.setdefault(e["original_img_id"], []).append(e)
    for img_id, caps in by_image.items():
        caps = sorted(caps, key=lambda e: e["sentence_id"])
        entity_of: dict[tuple, int] = {}
        lines = []
        for e in caps:
            text, last = "", 0
            for p in e["phrases"]:
                key = tuple(tuple(b) for b in p["boxes"])
                ent = entity_of.setdefault(key, len(entity_of) + 1)
                (s, t), = p["spans"]
                text += e["caption"][last:s] + f"[/EN#{ent}/{p['type']} " + e["caption"][s:t] + "]"
                last = t
            lines.append(text + e["caption"][last:])
        write_bytes(entities_dir / "Sentences" / f"{img_id}.txt", ("\n".join(lines) + "\n").encode())
        first = caps[0]
        xml = [f"<annotation><filename>{escape(first['file_name'])}</filename>",
               f"<size><width>{first['width']}</width><height>{first['height']}</height><depth>3</depth></size>"]
        for key, ent in entity_of.items():
            for x, y, w, h in key:
                xml.append(f"<object><name>{ent}</name><bndbox><xmin>{x}</xmin><ymin>{y}</ymin>"
                           f"<xmax>{x + w - 1}</xmax><ymax>{y + h - 1}</ymax></bndbox></object>")
        xml.append("</annotation>")
        write_bytes(entities_dir / "Annotations" / f"{img_id}.xml", ("\n".join(xml) + "\n").encode())
    ids = "".join(f"{i}\n" for i in sorted(by_image))
    write_bytes(entities_dir / f"{split}.txt", ids.encode())
