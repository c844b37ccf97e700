"""Few-shot sampling: the ODinW quota protocol, seeds that matter, machine independence."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from bench.tasks.fewshot import categories_by_image, copy_factor, sample_image_ids
from bench.util.errors import UserError


def _world(n_images=60, n_cats=4, seed=0):
    rng = random.Random(seed)
    cats = {i: [rng.randrange(1, n_cats + 1) for _ in range(rng.randrange(0, 4))] for i in range(1, n_images + 1)}
    return list(cats), cats


def _reference(ids, cats, k, seed):
    """Brute-force restatement of the protocol, written independently of the implementation."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    left = {c: k for v in cats.values() for c in v}
    out = []
    for i in order:
        present = set(cats.get(i, []))
        if [c for c in present if left[c] > 0]:
            out.append(i)
            for c in present:
                left[c] -= 1
    return out


@pytest.mark.parametrize("k", [1, 3, 5, 10])
@pytest.mark.parametrize("seed", [3, 30, 300])
def test_matches_reference_and_quota(k, seed):
    ids, cats = _world()
    got = sample_image_ids(ids, cats, k, seed)
    assert got == _reference(ids, cats, k, seed)
    per_cat = {}
    for i in got:
        assert cats[i], "an image without annotations was kept"
        for c in set(cats[i]):
            per_cat[c] = per_cat.get(c, 0) + 1
    # every category reaches its quota (there are enough images) and is only exceeded by co-occurrence
    for c in {c for v in cats.values() for c in v}:
        assert per_cat[c] >= min(k, sum(c in set(v) for v in cats.values()))


def test_hand_computed_case():
    # order after shuffle is fixed by us through a permutation-invariant world: 1 category, k=2
    cats = {1: [1], 2: [1, 1], 3: [1], 4: []}
    got = sample_image_ids([1, 2, 3, 4], cats, 2, seed=7)
    assert len(got) == 2 and 4 not in got  # per-image counting: image 2's two boxes count once
    order = [1, 2, 3, 4]
    random.Random(7).shuffle(order)
    assert got == [i for i in order if i != 4][:2]


def test_seed_changes_sample_same_seed_same_sample():
    ids, cats = _world(200, 6)
    samples = {s: sample_image_ids(ids, cats, 1, s) for s in (3, 30, 300)}
    assert len({tuple(v) for v in samples.values()}) == 3
    assert sample_image_ids(list(reversed(ids)), cats, 1, 30) == samples[30]  # input order does not matter


def test_same_sample_in_another_process_with_other_hash_seed():
    ids, cats = _world(80, 5)
    code = (
        "import json,sys; from bench.tasks.fewshot import sample_image_ids; d=json.load(sys.stdin); "
        "print(json.dumps(sample_image_ids(d['ids'], {int(k): v for k, v in d['cats'].items()}, 3, 300)))"
    )
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps({"ids": ids, "cats": cats}), text=True,
                         capture_output=True, env={"PYTHONHASHSEED": "12345", "PATH": ""}, check=True)
    assert json.loads(out.stdout) == sample_image_ids(ids, cats, 3, 300)


def test_categories_by_image_and_errors():
    coco = {"images": [{"id": 1}, {"id": 2}], "annotations": [{"image_id": 1, "category_id": 5},
                                                             {"image_id": 1, "category_id": 6}]}
    assert categories_by_image(coco) == {1: [5, 6], 2: []}
    with pytest.raises(UserError):
        sample_image_ids([1], {1: [1]}, 0, 3)


def test_copy_factors():
    assert [copy_factor(k) for k in (1, 3, 5, 10, None, 2, 20)] == [8, 4, 2, 1, 1, 8, 1]


def test_fewshot_subset_prefers_shipped_files(tmp_path, monkeypatch):
    from bench.tasks.fewshot import fewshot_subset
    from bench.tasks.registry import get_task
    from bench.testing.world import make_world

    _, data_root = make_world(tmp_path, monkeypatch, fewshot_files=True)
    task = get_task("runner-shapes-a")
    full = task.load("train", data_root)
    sampled = fewshot_subset(task, "train", 1, 30, data_root)  # no file for this seed: sampled here
    assert sampled.source == "sampled"
    assert sampled.image_ids == sample_image_ids(full.image_ids, categories_by_image(full.coco), 1, 30)
    assert sampled.dataset.image_ids == sorted(sampled.image_ids)
    shipped = data_root / "runner" / "runner-shapes-a" / "train" / "fewshot_train_shot1_seed30.json"
    shipped.write_text(json.dumps({"images": [{"id": 7}, {"id": 2}], "annotations": [], "categories": []}))
    got = fewshot_subset(task, "train", 1, 30, data_root)
    assert got.source == shipped.name and got.image_ids == [7, 2] and got.dataset.image_ids == [2, 7]
    shipped.write_text(json.dumps({"images": [{"id": 999}]}))
    with pytest.raises(UserError, match="999"):
        fewshot_subset(task, "train", 1, 30, data_root)
    everything = fewshot_subset(task, "train", None, 30, data_root)
    assert everything.source == "full" and everything.image_ids == full.image_ids


def _coco_world(seed: int, n_images: int = 80, n_cats: int = 6) -> dict:
    """A COCO dict with crowded, empty and single-class images, in a shuffled image order."""
    rng = random.Random(seed)
    images = [{"id": i, "file_name": f"{i}.png"} for i in rng.sample(range(1, 10 * n_images), n_images)]
    anns = [{"id": len(images) * 10 + j, "image_id": img["id"], "category_id": rng.randrange(1, n_cats + 1)}
            for img in images for j in range(rng.choice([0, 1, 1, 2, 5]))]
    return {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(1, n_cats + 1)]}


@pytest.mark.parametrize("world_seed", [0, 1, 2])
def test_synthetic_fewshot_files_hold_the_protocols_sample(world_seed):
    from bench.synthetic.writers import fewshot_coco

    coco = _coco_world(world_seed)
    for k in (1, 3, 5, 10):
        for seed in (3, 30, 300):
            drawn = _reference([im["id"] for im in coco["images"]], categories_by_image(coco), k, seed)
            assert drawn == sample_image_ids([im["id"] for im in coco["images"]], categories_by_image(coco), k, seed)
            written = fewshot_coco(coco, k, seed)
            assert {im["id"] for im in written["images"]} == set(drawn), (k, seed)
            assert written["annotations"] == [a for a in coco["annotations"] if a["image_id"] in set(drawn)]
