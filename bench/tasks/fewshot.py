"""k-shot subsets of a detection training (or validation) split, chosen by a seed.

The ODinW image-level quota protocol (maskrcnn_benchmark/data/datasets/coco.py, COCODataset): start from
the image ids in sorted order, shuffle them with `random.Random(seed)`, then walk the list and keep an
image if any category on it still has quota (k per category, counted once per image), decrementing the
quota of every category the kept image shows. Images without annotations are never kept.

Differences from the official code, on purpose:
- The official on-the-fly path (`CocoGrounding`, used by the README fine-tuning command) ignores the
  shuffle seed, so its "seeds" 3, 30, 300 all give the same subset. Here the seed always shuffles, so
  different seeds give different samples (the official `COCODataset` path shuffles the same way,
  except that it skips the shuffle for seed 0; we shuffle for every seed).
- Only `random.Random(seed)` is used, on a sorted list: no dependence on dict/set/hash order or on
  numpy's global state, so one seed gives one sample on every machine and Python version >= 3.2.

When the data set ships pre-sampled split files (`Task.fewshot_path`), those are used instead. A task
whose whole train split is the benchmark's fixed k-shot sample (`fixed_train_shots`, RF100-VL-FSOD) is
never sampled: --shots k uses that split as is, and any other k is refused.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.util.errors import UserError
from bench.util.io import read_json

SHOTS = (1, 3, 5, 10)
SEEDS = (3, 30, 300)
# official training-set copy factor per shot (README `--custom_shot_and_epoch_and_general_copy` 1_200_8,
# 3_200_4, 5_200_2, 10_200_1; full data 0_200_1), read by tools/finetune.py
COPY_FACTORS = {1: 8, 3: 4, 5: 2, 10: 1}


def copy_factor(shots: int | None) -> int:
    """Official copy factor; shots outside {1,3,5,10} get the factor of the nearest smaller official k."""
    if shots is None:
        return 1
    eligible = [k for k in sorted(COPY_FACTORS) if k <= shots]
    return COPY_FACTORS[eligible[-1]] if eligible else COPY_FACTORS[1]


def sample_image_ids(
    image_ids: Iterable[int], categories_of: Mapping[int, Iterable[int]], shots: int, seed: int
) -> list[int]:
    """The ODinW quota sample: image ids kept, in the order they were picked.

    image_ids: every image of the split; categories_of: image id -> category ids of its annotations
    (repeats allowed; an image missing from the mapping has none).
    """
    if shots < 1:
        raise UserError(f"few-shot sampling needs shots >= 1 (got {shots})")
    ids = sorted(set(image_ids))
    random.Random(seed).shuffle(ids)
    quota: dict[int, int] = {}
    kept = []
    for image_id in ids:
        cats = sorted(set(categories_of.get(image_id, ())))
        if any(quota.get(c, shots) > 0 for c in cats):
            kept.append(image_id)
            for c in cats:
                quota[c] = quota.get(c, shots) - 1
    return kept


def categories_by_image(coco: Mapping[str, Any]) -> dict[int, list[int]]:
    """image id -> category ids, from a COCO-format dict."""
    out: dict[int, list[int]] = {int(img["id"]): [] for img in coco.get("images", [])}
    for ann in coco.get("annotations", []):
        out.setdefault(int(ann["image_id"]), []).append(int(ann["category_id"]))
    return out


def most_shots(coco: Mapping[str, Any]) -> tuple[int, str]:
    """The largest k a k-shot sample of this split can honour, and the class that sets it: the number of
    images showing the most-shown class (a larger k samples the same images and mislabels the run)."""
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in coco.get("categories", [])}
    images: dict[int, set[int]] = {}
    for image_id, cats in categories_by_image(coco).items():
        for c in set(cats):
            images.setdefault(c, set()).add(image_id)
    if not images:
        return 0, ""
    best = max(images, key=lambda c: (len(images[c]), -c))
    return len(images[best]), names.get(best, str(best))


def check_fixed_shots(task: Any, shots: int | None) -> None:
    """A task whose train split IS a fixed k-shot sample (RF100-VL-FSOD: `fixed_train_shots`) takes --shots k
    only: any other count would resample or enlarge the benchmark's own sample."""
    fixed = getattr(task, "fixed_train_shots", None)
    if fixed is not None and shots != fixed:
        asked = "all" if shots is None else shots
        raise UserError(f"--shots {asked}: the train split of task {task.name} is the benchmark's fixed {fixed}-shot "
                        f"sample (it ships that way, e.g. RF100-VL-FSOD); only --shots {fixed} runs on it, using it as "
                        f"is (seeds then vary training only). For other shot counts use the full variant of the data set")


def check_shots(task: Any, split: str, shots: int | None, seed: int, data_root: Any) -> None:
    """Refuse a k the split cannot give (unless a pre-sampled file for it ships with the data)."""
    check_fixed_shots(task, shots)
    if getattr(task, "fixed_train_shots", None) is not None:
        return
    if shots is None or task.fewshot_path(shots, seed, data_root, which="train") is not None:
        return
    full = task.load(split, data_root, vocabulary="base")
    most, name = most_shots(full.coco)
    if shots > most:
        raise UserError(f"--shots {shots}: the {split} split of task {task.name} ({len(full.images)} images) gives "
                        f"at most {most} shots (class {name!r} is in {most} images); use --shots {most} or less, "
                        "or --shots all for the whole split")


@dataclass(frozen=True)
class FewShotSplit:
    """A sampled subset: the data set restricted to `image_ids`, and where the ids came from."""

    dataset: Any  # bench.data.types.DetectionDataset
    image_ids: list[int]
    source: str  # "sampled" or the pre-sampled file's name


def fewshot_subset(
    task: Any, split: str, shots: int | None, seed: int, data_root: Any, which: str = "train"
) -> FewShotSplit:
    """The k-shot subset of `task`'s `split` for `seed` (`shots=None`: the whole split).

    A pre-sampled file shipped with the data set (`task.fewshot_path(shots, seed, data_root, which)`)
    wins over sampling; its image ids must belong to the split. Training data: an open-vocabulary task
    gives its base classes only (no novel class in the prompts or the boxes).
    """
    full = task.load(split, data_root, vocabulary="base")
    if which == "train" and getattr(task, "fixed_train_shots", None) is not None:
        check_fixed_shots(task, shots)
        from bench.tasks.family import fixed_shots_note

        return FewShotSplit(full, [img.id for img in full.images], fixed_shots_note(shots))
    if shots is None:
        ids = [img.id for img in full.images]
        return FewShotSplit(full, ids, "full")
    shipped = task.fewshot_path(shots, seed, data_root, which=which)
    if shipped is not None:
        ids = [int(img["id"]) for img in read_json(shipped).get("images", [])]
        known = {img.id for img in full.images}
        missing = sorted(set(ids) - known)
        if missing:
            raise UserError(
                f"pre-sampled file {shipped} names image ids {missing[:5]} that are not in the {split} split of "
                f"task {task.name}; the file does not belong to this data set version"
            )
        source = shipped.name
    else:
        ids = sample_image_ids([img.id for img in full.images], categories_by_image(full.coco), shots, seed)
        source = "sampled"
    if not ids:
        raise UserError(f"the {which} split of task {task.name} has no annotated images to sample {shots} shots from")
    return FewShotSplit(full.subset(ids), ids, source)

