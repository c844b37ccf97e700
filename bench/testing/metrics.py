"""Generated metric inputs that look like a detector's output, for tests and benchmarks.

Each maker returns ground truth in the real file format and predictions in the runner's format, from
a seed, so the metric backends can be compared on thousands of images without a data set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics.flickr import PHRASE_TYPES, enclosing_box
from bench.metrics.lvis import FREQUENCIES


def make_detection_fixture(
    n_images: int = 1000,
    n_categories: int = 8,
    seed: int = 0,
    crowd_fraction: float = 0.0,
    score_decimals: int | None = None,
    false_positives: int = 5,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO ground truth and detections that look like a detector's, for tests and benchmarks.

    Each image holds 0-9 objects whose sizes span the small/medium/large ranges. A detector finds
    most of them with box noise that grows as its score falls, sometimes with the wrong label or a
    duplicate, and adds low-scored false positives, so AP lands in a realistic 30-60 range.
    score_decimals rounds scores (ties between detections); crowd_fraction marks objects iscrowd;
    false_positives is the most false positives per image (uniform 0..n).
    """
    rng = np.random.default_rng(seed)
    categories = [{"id": k + 1, "name": f"class_{k}", "supercategory": "thing"} for k in range(n_categories)]
    images, annotations, dets = [], [], []
    for image_id in range(1, n_images + 1):
        width, height = int(rng.integers(320, 1024)), int(rng.integers(240, 800))
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "width": width, "height": height})
        for _ in range(int(rng.integers(0, 10))):
            box = _random_box(rng, width, height)
            cat = int(rng.integers(1, n_categories + 1))
            crowd = int(rng.random() < crowd_fraction)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": crowd,
                }
            )
            if rng.random() < 0.85:  # found; quality q in (0, 1) decides box noise and score
                for _copy in range(1 + int(rng.random() < 0.15)):  # sometimes a duplicate
                    q = float(rng.beta(4, 2))
                    label = cat if rng.random() < 0.9 else int(rng.integers(1, n_categories + 1))
                    dets.append(
                        _detection(
                            image_id,
                            label,
                            _jitter(rng, box, 0.25 * (1 - q), width, height),
                            6.0 * (q - 0.5) + rng.normal(),
                        )
                    )
        for _ in range(int(rng.integers(0, false_positives + 1))):  # false positives
            box = _random_box(rng, width, height)
            dets.append(
                _detection(image_id, int(rng.integers(1, n_categories + 1)), box, -2.0 + 1.5 * rng.normal())
            )
    if score_decimals is not None:
        for d in dets:
            d["score"] = round(d["score"], score_decimals)
    gt = {
        "info": {"description": "generated"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    return gt, dets


def _random_box(rng: np.random.Generator, width: int, height: int) -> list[float]:
    """xywh with a log-uniform side (4..400 px) so every COCO area range is populated."""
    w = min(float(np.exp(rng.uniform(np.log(4), np.log(400)))), width - 1.0)
    h = min(w * float(np.exp(rng.normal(0, 0.4))), height - 1.0)
    x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
    return [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]


def _jitter(rng: np.random.Generator, box: list[float], scale: float, width: int, height: int) -> list[float]:
    x, y, w, h = box
    x2, y2 = x + w, y + h
    x, x2 = (v + scale * w * float(rng.normal()) for v in (x, x2))
    y, y2 = (v + scale * h * float(rng.normal()) for v in (y, y2))
    x, x2 = sorted((min(max(x, 0.0), width), min(max(x2, 0.0), width)))
    y, y2 = sorted((min(max(y, 0.0), height), min(max(y2, 0.0), height)))
    return [round(x, 2), round(y, 2), round(max(x2 - x, 1.0), 2), round(max(y2 - y, 1.0), 2)]


def _detection(image_id: int, cat: int, box: list[float], logit: float) -> dict[str, Any]:
    """A detection whose score is sigmoid(logit), like a detector's (no ties unless rounded)."""
    return {
        "image_id": image_id,
        "category_id": cat,
        "bbox": box,
        "score": float(1.0 / (1.0 + np.exp(-logit))),
    }


def make_lvis_fixture(
    n_images: int = 1000, n_categories: int = 60, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An LVIS-format ground truth (federated fields, r/c/f frequencies) and realistic detections.

    Each image has 1-4 positive categories (1-3 objects each), 2-8 verified-absent categories
    (neg_category_ids), some positives marked not exhaustive, and detections on positive, negative
    and unverified categories (the last ones the evaluation must drop).
    """
    rng = np.random.default_rng(seed)
    freq = rng.choice(list(FREQUENCIES), size=n_categories, p=[0.25, 0.4, 0.35])
    categories = [
        {"id": k + 1, "name": f"lvis_{k}", "synset": f"lvis_{k}.n.01", "frequency": str(freq[k])}
        for k in range(n_categories)
    ]
    all_ids = np.arange(1, n_categories + 1)
    images, annotations, dets = [], [], []
    for image_id in range(1, n_images + 1):
        width, height = int(rng.integers(320, 1024)), int(rng.integers(240, 800))
        shuffled = rng.permutation(all_ids)
        n_pos, n_neg = int(rng.integers(1, 5)), int(rng.integers(2, 9))
        pos, neg = shuffled[:n_pos], shuffled[n_pos : n_pos + n_neg]
        unverified = shuffled[n_pos + n_neg : n_pos + n_neg + 3]
        not_exhaustive = [int(c) for c in pos if rng.random() < 0.15]
        images.append({
            "id": image_id, "file_name": f"{image_id:012d}.jpg", "width": width, "height": height,
            "neg_category_ids": [int(c) for c in neg], "not_exhaustive_category_ids": not_exhaustive,
        })  # fmt: skip
        for cat in pos:
            for _ in range(int(rng.integers(1, 4))):
                box = _random_box(rng, width, height)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cat),
                                    "bbox": box, "area": box[2] * box[3]})  # fmt: skip
                if rng.random() < 0.8:
                    q = float(rng.beta(4, 2))
                    box_hat = _jitter(rng, box, 0.25 * (1 - q), width, height)
                    dets.append(_detection(image_id, int(cat), box_hat, 6.0 * (q - 0.5) + rng.normal()))
        for cat in np.concatenate([pos, neg, unverified]):  # false positives of every kind
            for _ in range(int(rng.integers(0, 3))):
                dets.append(
                    _detection(image_id, int(cat), _random_box(rng, width, height), -2.0 + 1.5 * rng.normal())
                )
    gt = {"info": {"description": "generated LVIS-style"}, "images": images, "annotations": annotations,
          "categories": categories}  # fmt: skip
    return gt, dets


def make_flickr_fixture(
    n_entries: int = 400, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Flickr-style entries (1-5 phrases, 0-3 boxes each, 1-2 types) and ranked predictions.

    A phrase's predictions (0-12 boxes) include, at a random rank, a box near one of its ground-truth
    boxes or near their enclosing box, so any-box and merged-box recalls differ and R@1 < R@5 < R@10.
    """
    rng = np.random.default_rng(seed)
    entries: list[dict[str, Any]] = []
    preds: list[dict[str, Any]] = []
    for image_id in range(1, n_entries + 1):
        width, height = float(rng.integers(300, 640)), float(rng.integers(300, 640))
        phrases, boxes, scores = [], [], []
        for p in range(int(rng.integers(1, 6))):
            n_gt = int(rng.choice([0, 1, 1, 1, 2, 3]))
            gt = [_xyxy(rng, width, height) for _ in range(n_gt)]
            types = list(rng.choice(PHRASE_TYPES, size=int(rng.integers(1, 3)), replace=False))
            phrases.append({"phrase_id": f"{image_id}_{p}", "boxes": gt, "types": [str(t) for t in types]})
            ranked = [_xyxy(rng, width, height) for _ in range(int(rng.integers(0, 13)))]
            if gt and ranked and rng.random() < 0.8:
                target = (
                    gt[int(rng.integers(len(gt)))] if rng.random() < 0.7 else enclosing_box(np.asarray(gt))[0]
                )
                noise = rng.normal(0, 0.08, 4) * (target[2] - target[0] + target[3] - target[1]) / 2
                x1, y1, x2, y2 = (float(v) for v in np.asarray(target) + noise)
                ranked[int(rng.integers(len(ranked)))] = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
            boxes.append(ranked)
            scores.append(sorted((float(s) for s in rng.random(len(ranked))), reverse=True))
        entries.append({"image_id": image_id, "phrases": phrases})
        preds.append({"image_id": image_id, "boxes": boxes, "scores": scores})
    return entries, preds


def _xyxy(rng: np.random.Generator, width: float, height: float) -> list[float]:
    w, h = float(rng.uniform(10, width / 2)), float(rng.uniform(10, height / 2))
    x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
    return [round(x, 1), round(y, 1), round(x + w, 1), round(y + h, 1)]


def with_edge_cases(
    gt: dict[str, Any], dets: list[dict[str, Any]], heavy: int = 150, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The fixture with what real annotation files have and generated ones lack, for backend equality tests.

    Image and category ids become non-contiguous (x7+3, x13+5); 5 empty images are added (no ground truth,
    no detections) and 3 images with detections but no ground truth; every 10th annotation gets an 'ignore'
    flag; the first image gets `heavy` extra detections of its first category (more than COCO's maxDets 100 /
    LVIS's 300 per image), with tied scores. LVIS fields (neg / not-exhaustive ids) are remapped too.
    """
    rng = np.random.default_rng(seed)
    img_map = {int(i["id"]): 13 * int(i["id"]) + 5 for i in gt["images"]}
    cat_map = {int(c["id"]): 7 * int(c["id"]) + 3 for c in gt["categories"]}
    images = []
    for img in gt["images"]:
        new = {**img, "id": img_map[int(img["id"])]}
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            if key in img:
                new[key] = [cat_map[int(c)] for c in img[key]]
        images.append(new)
    template = dict(gt["images"][0])
    lvis = "neg_category_ids" in template
    extra_ids = [10**6 + 17 * k for k in range(8)]
    for k, image_id in enumerate(extra_ids):
        new = {"id": image_id, "file_name": f"extra_{k}.jpg", "width": 640, "height": 480}
        if lvis:  # the first category verified absent, so the detections there are false positives
            new.update(neg_category_ids=[cat_map[int(gt["categories"][0]["id"])]], not_exhaustive_category_ids=[])
        images.append(new)
    annotations = [
        {**a, "image_id": img_map[int(a["image_id"])], "category_id": cat_map[int(a["category_id"])],
         **({"ignore": 1} if k % 10 == 0 else {})}
        for k, a in enumerate(gt["annotations"])
    ]
    categories = [{**c, "id": cat_map[int(c["id"])]} for c in gt["categories"]]
    out = [{**d, "image_id": img_map[int(d["image_id"])], "category_id": cat_map[int(d["category_id"])]}
           for d in dets]
    first_cat = categories[0]["id"]
    for image_id in extra_ids[5:]:  # detections where there is no ground truth
        out += [_detection(image_id, first_cat, _random_box(rng, 640, 480), rng.normal()) for _ in range(4)]
    first = gt["annotations"][0]
    target_img, target_cat = img_map[int(first["image_id"])], cat_map[int(first["category_id"])]
    w, h = next((i["width"], i["height"]) for i in images if i["id"] == target_img)
    for _ in range(heavy):
        box = _jitter(rng, list(first["bbox"]), 0.3, w, h)
        out.append({"image_id": target_img, "category_id": target_cat, "bbox": box,
                    "score": round(float(rng.uniform(0.2, 0.9)), 2)})
    return {**gt, "images": images, "annotations": annotations, "categories": categories}, out


def make_lvis_v1_like(
    n_images: int, n_categories: int = 1203, per_image: int = 300, chunks: int = 2, seed: int = 0
) -> tuple[dict[str, Any], np.ndarray]:
    """An LVIS-v1-sized ground truth and a chunked zero-shot run's detections as an (N, 7) array.

    LVIS v1 val has ~12.5 objects of ~3.7 categories per image, 1,203 categories (r/c/f ~ 28/38/34%), and
    neg / not-exhaustive ids per image. Each image gets `per_image` detections for each of `chunks` prompts
    (the official per-chunk cap): a noisy box per object (its category, a score that falls as the box gets
    worse) and the rest random boxes of random categories with low scores. Rows: bench.metrics.detections.
    Built with whole-array operations: 20,000 images x 600 detections take seconds.
    """
    rng = np.random.default_rng(seed)
    freq = rng.choice(list(FREQUENCIES), size=n_categories, p=[0.28, 0.38, 0.34])
    categories = [{"id": k + 1, "name": f"lvis_{k}", "synset": f"lvis_{k}.n.01", "frequency": str(freq[k])}
                  for k in range(n_categories)]
    images, annotations, rows = [], [], []
    w_all, h_all = rng.integers(320, 1024, n_images), rng.integers(240, 800, n_images)
    for k in range(n_images):
        image_id, w, h = k + 1, int(w_all[k]), int(h_all[k])
        cats = rng.choice(n_categories, size=int(rng.integers(1, 8)) + int(rng.integers(2, 12)), replace=False) + 1
        pos, neg = cats[: len(cats) // 3 + 1], cats[len(cats) // 3 + 1:]
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": w, "height": h,
                       "neg_category_ids": neg.tolist(),
                       "not_exhaustive_category_ids": [int(c) for c in pos if rng.random() < 0.1]})
        n_obj = int(rng.integers(len(pos), 4 * len(pos) + 1))
        obj_cat = rng.choice(pos, size=n_obj)
        side = np.exp(rng.uniform(np.log(4), np.log(400), n_obj))
        bw, bh = np.minimum(side, w - 1.0), np.minimum(side * np.exp(rng.normal(0, 0.4, n_obj)), h - 1.0)
        bx, by = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        for j in range(n_obj):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(obj_cat[j]),
                                "bbox": [round(float(v), 2) for v in (bx[j], by[j], bw[j], bh[j])],
                                "area": float(bw[j] * bh[j])})
        n = per_image * chunks
        det = np.empty((n, 7))
        det[:, 0] = image_id
        q = rng.beta(4, 2, n_obj)  # one candidate per object, box noise growing as quality falls
        noise = (1 - q)[:, None] * 0.3 * rng.normal(size=(n_obj, 4)) * np.stack([bw, bh, bw, bh], 1)
        m = min(n_obj, n)
        det[:m, 1:5] = (np.stack([bx, by, bw, bh], 1) + noise)[:m]
        det[:m, 5] = 1 / (1 + np.exp(-(6 * (q[:m] - 0.5) + rng.normal(size=m))))
        det[:m, 6] = obj_cat[:m]
        rest = n - m
        rw = np.exp(rng.uniform(np.log(4), np.log(400), rest))
        det[m:, 1] = rng.uniform(0, w, rest)
        det[m:, 2] = rng.uniform(0, h, rest)
        det[m:, 3], det[m:, 4] = rw, rw * np.exp(rng.normal(0, 0.4, rest))
        det[m:, 5] = 1 / (1 + np.exp(2.5 - 1.5 * rng.normal(size=rest)))
        det[m:, 6] = np.where(rng.random(rest) < 0.2, rng.choice(cats, size=rest), rng.integers(1, n_categories + 1, rest))
        det[:, 3:5] = np.maximum(det[:, 3:5], 1.0)
        rows.append(det)
    gt = {"info": {"description": "generated LVIS-v1-like"}, "images": images, "annotations": annotations,
          "categories": categories}
    return gt, np.concatenate(rows) if rows else np.zeros((0, 7))
