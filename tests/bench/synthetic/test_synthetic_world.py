"""The synthetic world's pixels, captions and concept split (bench/synthetic).

References are independent of the generator: boxes are checked against the pixels read back from the
written PNGs, phrase spans against the caption text, the concept split against the written files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.synthetic import TASKS, generate, pretraining_entries, pretraining_paths, vocabulary
from bench.synthetic.captions import detection_prompt, grounding_caption, join_names
from bench.synthetic.concepts import (
    BASE_PAIRS,
    BASE_SHAPES,
    COLOURS,
    HELD_OUT,
    NOVEL_SHAPES,
    PLURALS,
    SEEN_PAIRS,
    SHAPES,
    check_split,
)
from bench.synthetic.draw import mask_box, shape_mask
from bench.synthetic.scenes import ScenePlan, sample_scene
from bench.util.errors import UserError

SCALE = 0.03  # 8 images per split, 90 pretraining images


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(root, seed=0, scale=SCALE)
    return root / "synthetic"


def _all_files(root: Path, suffixes: tuple[str, ...]) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.suffix in suffixes}


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path, world: Path) -> None:
    tasks = ["synth-colours", "synth-grounding", "synth-lvis", "pretrain"]
    generate(tmp_path / "a", seed=0, scale=SCALE, tasks=tasks)
    generate(tmp_path / "b", seed=1, scale=SCALE, tasks=tasks)
    same = {}
    for t in tasks:  # a subset of tasks gives exactly the files of the full run (per-image seeding)
        same |= {f"{t}/{k}": v for k, v in _all_files(world / t, (".json", ".png", ".txt", ".xml")).items()}
    a = _all_files(tmp_path / "a" / "synthetic", (".json", ".png", ".txt", ".xml"))
    a.pop("concepts.json")
    assert a.keys() == same.keys()
    differing = [k for k in a if a[k] != same[k]]
    assert differing == []
    b = _all_files(tmp_path / "b" / "synthetic", (".json",))
    anns = [k for k in b if k.endswith("annotations_without_background.json") or "final_" in k or "lvis_" in k]
    assert anns and all(b[k] != a[k] for k in anns)


def test_generate_is_idempotent_and_rewrites_on_config_change(tmp_path: Path) -> None:
    first = generate(tmp_path, seed=0, scale=SCALE, tasks=["synth-novel"])
    ann = tmp_path / "synthetic" / "synth-novel" / "test" / "annotations_without_background.json"
    mtime = ann.stat().st_mtime_ns
    again = generate(tmp_path, seed=0, scale=SCALE, tasks=["synth-novel"])
    assert again["tasks"]["synth-novel"]["skipped"] and ann.stat().st_mtime_ns == mtime
    assert again["tasks"]["synth-novel"]["files"] == first["tasks"]["synth-novel"]["files"]
    other = generate(tmp_path, seed=5, scale=SCALE, tasks=["synth-novel"])
    assert not other["tasks"]["synth-novel"]["skipped"]
    assert other["tasks"]["synth-novel"]["config_hash"] != first["tasks"]["synth-novel"]["config_hash"]


def test_bad_arguments_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="synth-novel"):
        generate(tmp_path, tasks=["synth-novle"])
    with pytest.raises(UserError, match="quick"):
        generate(tmp_path, scale=0)
    with pytest.raises(UserError, match="--tasks pretrain"):
        pretraining_paths(tmp_path)
    assert set(TASKS) >= {"synth-shapes", "synth-colours", "synth-compositions", "synth-novel", "synth-crowded",
                          "synth-grounding", "synth-lvis", "pretrain"}


def _check_box_against_pixels(img: np.ndarray, bbox: list[int], rgb: tuple[int, int, int], where: str) -> None:
    """The object colour is inside the box and its extent (box grown by 1 px) is exactly the box."""
    x, y, w, h = bbox
    H, W = img.shape[:2]
    assert x >= 0 and y >= 0 and w >= 1 and h >= 1 and x + w <= W and y + h <= H, f"{where}: {bbox} leaves the image"
    x0, y0, x1, y1 = max(x - 1, 0), max(y - 1, 0), min(x + w + 1, W), min(y + h + 1, H)
    hit = (img[y0:y1, x0:x1] == np.asarray(rgb, np.uint8)).all(-1)
    ys, xs = np.nonzero(hit)
    assert len(xs) > 0, f"{where}: no pixel of colour {rgb} in box {bbox}"
    tight = [int(xs.min()) + x0, int(ys.min()) + y0, int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1]
    assert tight == list(bbox), f"{where}: pixels of {rgb} span {tight}, box says {bbox}"


@pytest.mark.parametrize("task", ["synth-shapes", "synth-colours", "synth-compositions", "synth-novel", "synth-crowded"])
def test_detection_boxes_match_the_drawn_objects(world: Path, task: str) -> None:
    for split in ("train", "valid", "test"):
        d = world / task / split
        coco = json.loads((d / "annotations_without_background.json").read_text())
        names = {c["id"]: c["name"] for c in coco["categories"]}
        files = {im["id"]: im["file_name"] for im in coco["images"]}
        assert coco["annotations"], f"{task}/{split} has no annotation"
        for a in coco["annotations"]:
            img = np.asarray(Image.open(d / files[a["image_id"]]).convert("RGB"))
            attrs = a["attributes"]
            _check_box_against_pixels(img, a["bbox"], COLOURS[attrs["colour"]], f"{task}/{split} ann {a['id']}")
            label = names[a["category_id"]]
            assert label in (attrs["shape"], f"{attrs['colour']} {attrs['shape']}")


def test_lvis_and_pretraining_boxes_match_the_drawn_objects(world: Path) -> None:
    for ann_file, img_dir in [
        (world / "synth-lvis/annotations/lvis_val.json", world / "synth-lvis/images/val"),
        (world / "pretrain/detection_train.json", world / "pretrain/images"),
    ]:
        data = json.loads(ann_file.read_text())
        files = {im["id"]: im["file_name"] for im in data["images"]}
        for a in data["annotations"]:
            img = np.asarray(Image.open(img_dir / files[a["image_id"]]).convert("RGB"))
            _check_box_against_pixels(img, a["bbox"], COLOURS[a["attributes"]["colour"]], f"{ann_file.name} {a['id']}")


def test_shape_masks_fill_their_region_and_boxes_are_pixel_inclusive() -> None:
    for shape in SHAPES:
        for side in (10, 13, 22, 40):
            mask = shape_mask(shape, side, side)
            x, y, w, h = mask_box(mask)
            ys, xs = np.nonzero(mask)
            assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
            # big enough to learn: the drawn object spans most of its region both ways (a crescent is ~0.7 wide)
            assert w >= 0.6 * side and h >= 0.6 * side, (shape, side, (w, h))
    assert mask_box(np.zeros((5, 5), bool)) is None
    with pytest.raises(ValueError, match="known shapes"):
        shape_mask("blob", 10, 10)


def test_objects_never_overlap_and_crowded_scenes_are_crowded() -> None:
    plan = ScenePlan(targets=BASE_PAIRS, num_objects=(10, 22), sizes=("tiny", "small"), gap=2)
    counts = []
    for seed in range(20):
        objs = sample_scene(plan, np.random.default_rng(seed)).objects
        counts.append(len(objs))
        for i, a in enumerate(objs):
            for b in objs[i + 1:]:
                ax1, ay1, ax2, ay2 = a.xyxy
                bx1, by1, bx2, by2 = b.xyxy
                assert ax2 < bx1 or bx2 < ax1 or ay2 < by1 or by2 < ay1, (a, b)
    assert min(counts) >= 8 and np.mean(counts) >= 12


def _phrase_claims(text: str) -> dict:
    words = text.split()
    plural_of = {v: k for k, v in PLURALS.items()}
    count = {"a": 1, "an": 1, "the": 1, "two": 2, "three": 3}[words[0]]
    shape = words[-1] if count == 1 else plural_of[words[-1]]
    colour = next((w for w in words if w in COLOURS), None)
    size = next((w for w in words if w in ("small", "large")), None)
    return {"count": count, "shape": shape, "colour": colour, "size": size}


def test_grounding_phrases_cover_exactly_their_text_and_refer_to_every_matching_object() -> None:
    plan = ScenePlan(targets=BASE_PAIRS, num_objects=(1, 7))
    n_phrases = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        scene = sample_scene(plan, rng)
        caption, phrases = grounding_caption(scene.objects, rng)
        assert phrases and caption == caption.strip() and "  " not in caption
        used: set[int] = set()
        for p in phrases:
            s, e = p.span
            assert caption[s:e] == p.text
            assert (s == 0 or caption[s - 1] == " ") and (e == len(caption) or caption[e] == " ")
            claim = _phrase_claims(p.text)
            matching = {
                j for j, o in enumerate(scene.objects)
                if o.shape == claim["shape"] and claim["colour"] in (None, o.colour) and claim["size"] in (None, o.size)
            }
            assert set(p.objects) == matching and len(matching) == claim["count"], (caption, p)
            assert not used & matching
            used |= matching
            n_phrases += 1
        if len(phrases) == 1:
            continue
        a, b = scene.objects[phrases[0].objects[0]], scene.objects[phrases[1].objects[0]]
        gap = caption[phrases[0].span[1]:phrases[1].span[0]].strip()
        if gap in ("left of", "right of"):  # relations say where the first object lies
            assert (a.centre[0] < b.centre[0]) == (gap == "left of")
        if gap in ("above", "below"):
            assert (a.centre[1] < b.centre[1]) == (gap == "above")
    assert n_phrases > 200


def test_detection_prompt_spans_and_negatives() -> None:
    vocab = [f"{c} {s}" for c, s in BASE_PAIRS]
    for seed in range(50):
        rng = np.random.default_rng(seed)
        present = ["red circle", "blue ring", "red circle"]
        caption, spans = detection_prompt(present, vocab, rng)
        names = caption.split(". ")
        assert sorted(spans) == sorted(names) and {"red circle", "blue ring"} <= set(spans)
        assert len(names) >= 3 and len(set(names)) == len(names)
        for name, (s, e) in spans.items():
            assert caption[s:e] == name
    assert join_names(["a b", "c"]) == ("a b. c", [(0, 3), (5, 6)])


def test_concept_split_invariants(world: Path) -> None:
    check_split()
    assert len(BASE_PAIRS) == 56 and not set(HELD_OUT) & set(BASE_PAIRS) and not set(SEEN_PAIRS) & set(HELD_OUT)
    # every held-out word is seen in pretraining with other partners
    assert {c for c, _ in HELD_OUT} <= {c for c, _ in BASE_PAIRS} and {s for _, s in HELD_OUT} <= set(BASE_SHAPES)
    pre = json.loads((world / "pretrain/mdetr_annotations/final_synth_pretrain.json").read_text())
    det = json.loads((world / "pretrain/detection_train.json").read_text())
    novel_words = set(NOVEL_SHAPES) | {PLURALS[s] for s in NOVEL_SHAPES}
    held = [re.compile(rf"\b{c} (?:small |large )?{s}(?:e?s)?\b") for c, s in HELD_OUT]
    sources = {"grounding": 0, "detection": 0}
    for rec in pre["images"]:
        sources[rec["source"]] += 1
        words = set(re.findall(r"[a-z]+", rec["caption"]))
        assert not words & novel_words, rec["caption"]
        assert not any(h.search(rec["caption"]) for h in held), rec["caption"]
    assert min(sources.values()) > 0
    drawn = {(a["attributes"]["colour"], a["attributes"]["shape"]) for a in det["annotations"]}
    assert drawn <= set(BASE_PAIRS) and len(drawn) > 30
    assert pretraining_paths(world.parent) == (world / "pretrain/mdetr_annotations/final_synth_pretrain.json",
                                               world / "pretrain/images")
    # in-memory entries are the same as the file's
    entries = pretraining_entries(seed=0, scale=SCALE)
    assert [e["caption"] for e in entries] == [r["caption"] for r in pre["images"]]
    assert json.loads((world / "concepts.json").read_text())["novel_shapes"] == list(NOVEL_SHAPES)


def test_pretraining_detection_entries_follow_od_to_grounding(world: Path) -> None:
    pre = json.loads((world / "pretrain/mdetr_annotations/final_synth_pretrain.json").read_text())
    anns: dict[int, list[dict]] = {}
    for a in pre["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    with_negatives = 0
    for rec in pre["images"]:
        cap = rec["caption"]
        phrase_texts = {cap[s:e] for spans in rec["tokens_positive_eval"] for s, e in spans}
        for a in anns.get(rec["id"], []):
            (s, e), = a["tokens_positive"]
            assert cap[s:e] in phrase_texts
        if rec["source"] == "detection":
            names = cap.split(". ")
            assert phrase_texts <= set(names)
            with_negatives += len(names) > len(phrase_texts)
    assert with_negatives > 0


def test_vocabulary_covers_every_caption_and_prompt(world: Path) -> None:
    vocab = set(vocabulary())
    assert set(NOVEL_SHAPES) <= vocab and vocabulary() == sorted(vocab)
    texts = [r["caption"] for r in json.loads((world / "pretrain/mdetr_annotations/final_synth_pretrain.json").read_text())["images"]]
    for split in ("train", "val", "test"):
        g = json.loads((world / f"synth-grounding/mdetr_annotations/final_flickr_separateGT_{split}.json").read_text())
        texts += [r["caption"] for r in g["images"]]
    for task in ("synth-shapes", "synth-colours", "synth-compositions", "synth-novel", "synth-crowded"):
        coco = json.loads((world / task / "test/annotations_without_background.json").read_text())
        texts.append(". ".join(c["name"] for c in coco["categories"]))
    lvis = json.loads((world / "synth-lvis/annotations/lvis_test.json").read_text())
    texts.append(". ".join(c["name"].replace("_", " ") for c in lvis["categories"]))
    for text in texts:
        words = set(re.findall(r"[a-z]+|[.,]", text))
        assert words <= vocab, (text, words - vocab)
    language = pytest.importorskip("glip.language")
    tok = language.build_wordpiece_tokenizer(vocabulary())
    unk = tok.unk_token_id
    for text in texts:
        assert unk not in tok(text)["input_ids"], text


def test_pretraining_set_reads_through_the_training_path(world: Path) -> None:
    train_data = pytest.importorskip("bench.data.training")
    prompts = pytest.importorskip("glip.prompts")
    language = pytest.importorskip("glip.language")
    json_path, image_root = pretraining_paths(world.parent)
    entries = train_data.load_grounding_entries(json_path, image_root)
    records = json.loads(json_path.read_text())["images"]
    assert len(entries) == len(records)  # every record has at least one boxed phrase
    tok = language.build_wordpiece_tokenizer(vocabulary())
    for e in entries:
        assert e.image_path.is_file()
        pmap = prompts.positive_map(tok, e.caption, e.spans)  # [boxes, 256]: every span hits a token
        assert pmap.shape[0] == len(e.boxes_xyxy) and bool((pmap.sum(1) > 0).all())
        for x1, y1, x2, y2 in e.boxes_xyxy:
            assert 0 <= x1 <= x2 <= 127 and 0 <= y1 <= y2 <= 127
