"""Tiny data sets in each real on-disk format, written under a tmp data root at a task's paths.

Helpers for tests (others may import them): COCO instances json, Roboflow ODinW exports
(annotations_without_background.json, few-shot files), LVIS v1 json with the federated fields, and
MDETR final_flickr_separateGT json + Flickr30K Entities Annotations/*.xml and Sentences/*.txt.
Images are real (tiny) JPEG files so `load_image` is exercised too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

# configs/odinw_13/*.yaml, the reference for tests: ODinW-13 task -> (classes in OVERRIDE_CATEGORY
# order, eval split)
ODINW13 = {
    "odinw-aerial-maritime-drone-large": (["boat", "car", "dock", "jetski", "lift"], "val"),
    "odinw-aquarium": (["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"], "val"),
    "odinw-cottontail-rabbits": (["Cottontail-Rabbit"], "val"),
    "odinw-egohands-generic": (["hand"], "minival"),
    "odinw-north-america-mushrooms": (["CoW", "chanterelle"], "val"),
    "odinw-packages": (["package"], "val"),
    "odinw-pascal-voc": ("aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike "
                         "person pottedplant sheep sofa train tvmonitor".split(), "val"),
    "odinw-raccoon": (["raccoon"], "val"),
    "odinw-shellfish-open-images": (["Crab", "Lobster", "Shrimp"], "val"),
    "odinw-vehicles-open-images": (["Ambulance", "Bus", "Car", "Motorcycle", "Truck"], "minival"),
    "odinw-pistols": (["pistol"], "val"),
    "odinw-pothole": (["pothole"], "val"),
    "odinw-thermal-dogs-and-people": (["dog", "person"], "val"),
}


def write_image(path: Path, width: int = 8, height: int = 6, color: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def coco_dict(
    categories: list[tuple[int, str]], n_images: int = 2, first_image_id: int = 1, sizes: tuple[int, int] = (8, 6),
    crowd: bool = False,
) -> dict[str, Any]:
    """A COCO instances dict: images first_image_id.., two boxes per image cycling over categories."""
    w, h = sizes
    images = [{"id": first_image_id + i, "file_name": f"img_{first_image_id + i:04d}.jpg", "width": w, "height": h}
              for i in range(n_images)]
    anns = []
    for i, im in enumerate(images):
        for j in range(2):
            cat = categories[(2 * i + j) % len(categories)][0]
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cat, "bbox": [1.0 + j, 1.0, 3.0, 2.0],
                         "area": 6.0, "iscrowd": 0, "segmentation": []})
    if crowd:
        anns.append({"id": len(anns) + 1, "image_id": images[0]["id"], "category_id": categories[0][0],
                     "bbox": [0.0, 0.0, 4.0, 4.0], "area": 16.0, "iscrowd": 1, "segmentation": []})
    cats = [{"id": cid, "name": name, "supercategory": "thing"} for cid, name in categories]
    return {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}


def write_coco_split(task, split: str, data_root: Path, data: dict[str, Any], images: bool = True) -> Path:
    """Write `data` as the split's annotation file and its images at the task's paths."""
    ann = task.ann_path(split, data_root)
    write_json(ann, data)
    img_dir = task.images_path(split, data_root)
    img_dir.mkdir(parents=True, exist_ok=True)
    if images:
        for im in data["images"]:
            write_image(img_dir / im["file_name"], im["width"], im["height"])
    return ann


def make_detection_task_data(task, data_root: Path, categories: list[tuple[int, str]] | None = None,
                             n_images: int = 2, fewshot: tuple[int, int] | None = (1, 3)) -> dict[str, dict]:
    """Every split of a COCO-format task (COCO or ODinW/Roboflow) under data_root, plus one shipped
    few-shot file per declared few-shot split (shots, seed). Categories default to the task's classes
    with ids 1..K, as in ODinW's annotations_without_background.json."""
    if categories is None:
        categories = [(i + 1, name) for i, name in enumerate(task.classes)]
    written: dict[str, dict] = {}
    for k, split in enumerate(task.splits):
        data = coco_dict(categories, n_images=n_images, first_image_id=1 + 100 * k)
        write_coco_split(task, split, data_root, data)
        written[split] = data
    if fewshot is not None:
        shots, seed = fewshot
        for which, pattern in task.fewshot.items():
            sub = dict(written[which])
            sub["images"] = sub["images"][:1]
            sub["annotations"] = [a for a in sub["annotations"] if a["image_id"] == sub["images"][0]["id"]]
            write_json(task.root_path(data_root) / pattern.format(shots=shots, seed=seed), sub)
    return written


def lvis_dict(categories: list[tuple[int, str, str]], n_images: int = 3) -> dict[str, Any]:
    """An LVIS v1 dict: coco_url paths in val2017 and train2017, federated image fields, frequencies."""
    cat_ids = [c[0] for c in categories]
    images = []
    for i in range(n_images):
        folder = "val2017" if i % 2 == 0 else "train2017"
        iid = 1000 + i
        images.append({
            "id": iid, "width": 8, "height": 6, "coco_url": f"http://images.cocodataset.org/{folder}/{iid:012d}.jpg",
            "flickr_url": "", "date_captured": "", "license": 1,
            "neg_category_ids": [cat_ids[-1]], "not_exhaustive_category_ids": [cat_ids[0]] if i == 0 else [],
        })
    anns = []
    for i, im in enumerate(images):
        cid = cat_ids[i % (len(cat_ids) - 1)] if len(cat_ids) > 1 else cat_ids[0]
        anns.append({"id": i + 1, "image_id": im["id"], "category_id": cid, "bbox": [1.0, 1.0, 3.0, 2.0], "area": 6.0,
                     "segmentation": [[1.0, 1.0, 4.0, 1.0, 4.0, 3.0]]})
    cats = [{"id": cid, "name": name, "synonyms": [name], "frequency": freq, "synset": f"{name}.n.01",
             "image_count": 1, "instance_count": 1, "def": ""} for cid, name, freq in categories]
    return {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}


def make_lvis_task_data(task, data_root: Path, categories: list[tuple[int, str, str]], split: str | None = None
                        ) -> dict[str, Any]:
    split = split or task.eval_split
    data = lvis_dict(categories)
    write_json(task.ann_path(split, data_root), data)
    for im in data["images"]:
        write_image(task.images_path(split, data_root) / "/".join(im["coco_url"].split("/")[-2:]))
    return data


# ---- Flickr30K Entities + MDETR ----------------------------------------------------------------
# Two images; image 1 has sentences whose phrases reference boxed, nobndbox and scene entities.
FLICKR_SENTENCES = {
    101: [
        "[/EN#1/people A man] in [/EN#2/clothing a red hat] walks [/EN#3/animals/other a dog] .",
        "[/EN#4/scene The street] is empty .",
        "[/EN#1/people Someone] holds [/EN#3/animals/other the dog] near [/EN#2/clothing a hat] .",
    ],
    102: ["[/EN#7/people Two kids] play with [/EN#8/other a ball] ."],
}
FLICKR_OBJECTS = {  # image -> list of (entity ids, box or None, nobndbox, scene)
    101: [(["1"], [2, 3, 10, 20], 0, 0), (["2"], [4, 1, 8, 5], 0, 0), (["3"], [12, 14, 20, 22], 0, 0),
          (["3"], [21, 14, 25, 22], 0, 0), (["4"], None, 0, 1)],
    102: [(["7", "9"], [1, 1, 15, 15], 0, 0), (["8"], None, 1, 0)],
}


def entities_xml(image_id: int, width: int = 32, height: int = 24) -> str:
    objs = []
    for ids, box, nobox, scene in FLICKR_OBJECTS[image_id]:
        names = "".join(f"<name>{i}</name>" for i in ids)
        if box is None:
            objs.append(f"<object>{names}<nobndbox>{nobox}</nobndbox><scene>{scene}</scene></object>")
        else:
            x1, y1, x2, y2 = box
            objs.append(f"<object>{names}<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
                        f"<ymax>{y2}</ymax></bndbox></object>")
    return (f"<annotation><filename>{image_id}.jpg</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{''.join(objs)}</annotation>")


def _plain(line: str) -> tuple[str, list[tuple[str, tuple[int, int]]]]:
    """Hand-rolled reference: the sentence text and (entity id, span) per phrase, in order."""
    words, phrases, cur = [], [], None
    for tok in line.split():
        if tok.startswith("[/EN#"):
            cur = [tok.split("/")[1][3:], len(" ".join(words)) + (1 if words else 0), []]
            continue
        if cur is not None:
            w = tok.rstrip("]")
            cur[2].append(w)
            words.append(w)
            if tok.endswith("]"):
                text = " ".join(cur[2])
                phrases.append((cur[0], (cur[1], cur[1] + len(text))))
                cur = None
        else:
            words.append(tok)
    return " ".join(words), phrases


def mdetr_flickr_dict(boxed: dict[int, set[str]]) -> dict[str, Any]:
    """The MDETR final_flickr_separateGT json for FLICKR_SENTENCES (tokens_positive_eval = boxed phrases)."""
    images, anns = [], []
    for img_id, lines in FLICKR_SENTENCES.items():
        for sent_id, line in enumerate(lines):
            caption, phrases = _plain(line)
            eval_spans = [[list(span)] for eid, span in phrases if eid in boxed[img_id]]
            entry_id = len(images)
            images.append({"file_name": f"{img_id}.jpg", "height": "24", "width": "32", "id": entry_id,
                           "caption": caption, "dataset_name": "flickr", "tokens_negative": [[0, len(caption)]],
                           "sentence_id": sent_id, "original_img_id": img_id, "tokens_positive_eval": eval_spans})
            for eid, span in phrases:
                for ids, box, _, _ in FLICKR_OBJECTS[img_id]:
                    if box is not None and eid in ids:
                        x1, y1, x2, y2 = box
                        anns.append({"area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "image_id": entry_id, "category_id": 1,
                                     "id": len(anns), "bbox": [x1, y1, x2 - x1, y2 - y1], "tokens_positive": [list(span)],
                                     "phrase_ids": int(eid)})
    return {"info": [], "licenses": [], "images": images, "annotations": anns,
            "categories": [{"supercategory": "object", "id": 1, "name": "object"}]}


def make_flickr_task_data(task, data_root: Path, split: str | None = None) -> dict[str, Any]:
    """MDETR json, Entities Annotations/Sentences and images for a Flickr task's split."""
    split = split or task.eval_split
    ent = task.entities_path(split, data_root)
    boxed = {i: {e for ids, box, _, _ in objs if box is not None for e in ids} for i, objs in FLICKR_OBJECTS.items()}
    for img_id, lines in FLICKR_SENTENCES.items():
        (ent / "Annotations").mkdir(parents=True, exist_ok=True)
        (ent / "Sentences").mkdir(parents=True, exist_ok=True)
        (ent / "Annotations" / f"{img_id}.xml").write_text(entities_xml(img_id))
        (ent / "Sentences" / f"{img_id}.txt").write_text("\n".join(lines) + "\n")
        write_image(task.images_path(split, data_root) / f"{img_id}.jpg", 32, 24)
    (ent / f"{split}.txt").write_text("\n".join(str(i) for i in FLICKR_SENTENCES) + "\n")
    data = mdetr_flickr_dict(boxed)
    write_json(task.ann_path(split, data_root), data)
    return data


# A minimal valid task YAML (a COCO-format toy task), for tests that edit one field at a time.
GOOD_TASK_YAML = """\
name: toy
version: 1
description: a toy task
source: made by the test
format: coco
root: toy
splits:
  val: {ann: val.json, images: val}
eval_split: val
classes: [cat, dog]
prompt_sets:
  plain: {}
  official: {suffix: {dog: " that barks"}}
metric: coco_bbox
"""


# ---- a chunked open-vocabulary LVIS fixture -----------------------------------------------------------
def chunked_lvis_categories(n_base: int = 110, n_rare: int = 40) -> list[tuple[int, str, str]]:
    """(id, name, frequency) of n_base frequent/common and n_rare rare classes named from glip-tiny's
    whole-word vocabulary ("small red square": 3 tokens + the separator), enough that the base classes'
    prompt needs several 40-class chunks and does not fit one 256-token caption."""
    sizes, colors = ("small", "large", "big"), ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown",
                                                 "black", "white", "gray")
    shapes = ("square", "circle", "triangle", "rectangle", "star", "ring", "cross", "diamond", "heart")
    names = [f"{s} {c} {h}" for s in sizes for h in shapes for c in colors][: n_base + n_rare]
    return [(k + 1, name, ("f", "c")[k % 2] if k < n_base else "r") for k, name in enumerate(names)]


def write_chunked_lvis(task, data_root: Path, split: str, categories: list[tuple[int, str, str]], n_images: int,
                       first_image_id: int, boxes_per_image: int = 3, size: tuple[int, int] = (64, 48)) -> dict[str, Any]:
    """An LVIS v1 split at the task's paths: every image has `boxes_per_image` large boxes of classes cycling
    over all categories (rare ones included), so training must drop the novel boxes."""
    data = lvis_dict(categories, n_images=n_images)
    w, h = size
    anns = []
    for i, im in enumerate(data["images"]):
        im["id"] = first_image_id + i
        folder = "val2017" if split != "train" else "train2017"
        im["coco_url"] = f"http://images.cocodataset.org/{folder}/{im['id']:012d}.jpg"
        im["width"], im["height"] = w, h
        im["neg_category_ids"], im["not_exhaustive_category_ids"] = [], []
        for j in range(boxes_per_image):
            cid = categories[(i * boxes_per_image + j * 53) % len(categories)][0]
            box = [2.0 + 3 * j, 2.0 + 2 * j, w - 6.0 * (j + 1), h - 5.0 * (j + 1)]
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cid, "bbox": box,
                         "area": box[2] * box[3], "segmentation": [[box[0], box[1], box[0] + box[2], box[1],
                                                                    box[0] + box[2], box[1] + box[3]]]})
        write_image(task.images_path(split, data_root) / "/".join(im["coco_url"].split("/")[-2:]), w, h,
                    color=(40 * (i % 6), 200 - 30 * (i % 5), 90))
    data["annotations"] = anns
    write_json(task.ann_path(split, data_root), data)
    return data
