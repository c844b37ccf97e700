"""The inference engine (bench/models/glip.py) against the naive path: model.detect once per chunk and image."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.types import DetectionDataset, GroundingDataset, GroundingSample, ImageInfo, Phrase
from bench.models.batching import plan_batches
from bench.models.glip import (
    ModelTimer,
    detect_chunks,
    encode_prompts,
    predict_detection,
    predict_grounding,
    to_coco_detections,
)
from glip.config import get_preset
from glip.head import HeadOutputs, VLDyHead
from glip.model import GLIP
from glip.prompts import build_prompt_chunks, positive_map

COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray", "cyan"]
SHAPES = ["square", "circle", "triangle", "rectangle", "star", "cross", "ring", "diamond", "ellipse", "hexagon"]
NAMES = [f"{c} {s}" for c, s in itertools.product(COLOURS, SHAPES)]  # 120 classes


@pytest.fixture(scope="module")
def model() -> GLIP:
    torch.manual_seed(0)
    m = GLIP(get_preset("glip-tiny")).eval()
    with torch.no_grad():  # random weights score every token near the 0.01 prior: lift them so boxes appear
        m.head.bias0.fill_(0.0)
        m.head.log_scale.fill_(-1.0)
    return m


# (width, height): three padded input sizes for glip-tiny (64..96 px): 96x64, 64x96, 96x96-ish
SIZES = [(120, 80), (90, 60), (80, 120), (120, 80), (64, 64), (60, 90), (100, 100), (120, 80)]


def _dataset(root: Path, sizes=SIZES, n_classes: int = len(NAMES)) -> DetectionDataset:
    rng = np.random.default_rng(0)
    images = []
    for i, (w, h) in enumerate(sizes, start=1):
        arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        arr[h // 4: h // 2, w // 4: w // 2] = (220, 30, 30)
        path = root / f"{i:03d}.png"
        Image.fromarray(arr).save(path)
        images.append(ImageInfo(id=i * 7, file_name=path.name, path=path, width=w, height=h))
    cats = [{"id": 10 + k, "name": n, "prompt_name": n} for k, n in enumerate(NAMES[:n_classes])]
    coco = {"images": [{"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height} for im in images],
            "annotations": [], "categories": [{k: v for k, v in c.items() if k != "prompt_name"} for c in cats]}
    return DetectionDataset("t", "val", root / "ann.json", images, cats, {}, coco)


def _naive(model: GLIP, dataset: DetectionDataset, chunks, cap: int) -> list[dict]:
    """Reference: the whole model per chunk and image (model.detect), merged by score and capped."""
    cat_ids = torch.tensor([c["id"] for c in dataset.categories])
    preds = []
    for image_id in dataset.image_ids:
        batch = model.preprocess([dataset.load_image(image_id)])
        parts = []
        for ch in chunks:
            d = model.detect(batch, [ch.caption], [ch.positive_map], detections_per_img=cap)[0]
            parts.append((d.boxes_xyxy, d.scores, cat_ids[torch.tensor(ch.phrase_indices)][d.labels]))
        preds += to_coco_detections(image_id, parts, cap)
    return preds


def _same(a: list[dict], b: list[dict], atol: float = 0.0) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x["image_id"], x["category_id"]) == (y["image_id"], y["category_id"])
        assert np.allclose(x["bbox"], y["bbox"], atol=atol, rtol=0) and abs(x["score"] - y["score"]) <= atol


@pytest.fixture(scope="module")
def world(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("inference")
    dataset = _dataset(root)
    chunks = build_prompt_chunks(model.tokenizer, NAMES, chunk_size=25)  # 120 classes -> 5 captions
    return dataset, chunks, _naive(model, dataset, chunks, cap=30)


def test_chunked_cached_path_equals_naive(model, world):
    dataset, chunks, naive = world
    assert len(chunks) == 5 and len(naive) > 100  # the prompt is chunked and there is something to compare
    timer = ModelTimer()
    preds, seconds = predict_detection(model, dataset, chunks, cap=30, batch_size=1, num_workers=0, timer=timer)
    assert preds == naive  # batch 1: the same numbers, bit for bit
    # the task cap is an argument, not state
    assert seconds > 0 and model.postprocessor.detections_per_img == 100
    n = len(dataset)
    assert timer.calls == {"text": 5, "backbone": n, "head": 5 * n, "postprocess": 5 * n}
    assert 0.0 <= timer.harness_fraction < 1.0


def test_late_fusion_runs_the_tower_once_and_equals_naive(world):
    dataset, chunks, _ = world
    torch.manual_seed(1)
    late = GLIP(get_preset("glip-tiny", fusion="late")).eval()
    with torch.no_grad():
        late.head.bias0.fill_(0.0)
    naive = _naive(late, dataset, chunks, cap=30)
    timer = ModelTimer()
    preds, _ = predict_detection(late, dataset, chunks, cap=30, batch_size=1, num_workers=0, timer=timer)
    assert len(naive) > 100 and preds == naive
    assert timer.calls["head_tower"] == len(dataset) and timer.calls["head"] == 5 * len(dataset)


def test_prefetch_thread_gives_the_plain_predictions(model, world):
    """Decoding the next batch in a background thread changes no number (batch 4, both paths in-process)."""
    dataset, chunks, _ = world
    plain, _ = predict_detection(model, dataset, chunks, cap=30, batch_size=4, num_workers=0, prefetch=False)
    ahead, _ = predict_detection(model, dataset, chunks, cap=30, batch_size=4, num_workers=0, prefetch=True)
    assert len(plain) > 100 and ahead == plain  # bit for bit


def test_workers_and_size_grouped_batches_match_batch_one(model, world):
    dataset, chunks, naive = world
    preds, _ = predict_detection(model, dataset, chunks, cap=30, batch_size=4, num_workers=2)
    _same(preds, naive, atol=1e-4)  # batching within one padded size: only float rounding can differ


def test_padding_batches_change_padded_images_only(model, world):
    """The official batching (no size grouping) pads smaller images; the fusion attends to the padding."""
    dataset, chunks, naive = world
    preds, _ = predict_detection(model, dataset, chunks, cap=30, batch_size=2, num_workers=0, group_by_size=False)
    changed = set()
    for pos, im in enumerate(dataset.images):
        a = [p for p in preds if p["image_id"] == im.id]
        b = [p for p in naive if p["image_id"] == im.id]
        if len(a) != len(b) or any(abs(x["score"] - y["score"]) > 1e-4 for x, y in zip(a, b)):
            changed.add(pos)
    # padded (h, w) per position: 64x96, 64x96 | 96x64, 64x96 | 64x64, 96x64 | 64x64, 64x96: in each pair the
    # image smaller than the pair's padded size is padded more than at batch 1 (96x96 / 96x64 / 64x96)
    assert changed == {2, 3, 4, 6}


def test_plan_batches_groups_by_padded_size():
    # glip-tiny (min 64, max 96, /32): 120x80 -> 64x96 (h, w) -> padded 64x96; 90x60 -> 64x96;
    # 80x120 -> 96x64; 64x64 -> 64x64; 100x100 -> 64x64 ... pad 64x64; 60x90 -> 96x64
    plan = plan_batches(SIZES, 2, 64, 96, 32)
    assert plan == [[0, 1], [3, 7], [2, 5], [4, 6]]
    assert sorted(itertools.chain(*plan)) == list(range(len(SIZES)))
    assert plan_batches(SIZES, 3, 64, 96, 32, group_by_size=False) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches(SIZES, 0, 64, 96)


def test_grounding_shares_the_backbone_and_equals_naive(model, tmp_path):
    dataset = _dataset(tmp_path, sizes=[(120, 80), (80, 120)])
    captions = ["a red square and a blue circle", "the green star", "a red square left of a ring"]
    samples = []
    for k, (img, cap) in enumerate([(0, captions[0]), (1, captions[1]), (0, captions[2])]):
        words = cap.split(" ")
        spans = [(cap.index(w), cap.index(w) + len(w)) for w in words if w in ("square", "circle", "star", "ring")]
        phrases = [Phrase(str(j), [s], [[0, 0, 5, 5]], ["other"]) for j, s in enumerate(spans)]
        samples.append(GroundingSample(id=100 + k, image=dataset.images[img], caption=cap, phrases=phrases))
    gd = GroundingDataset("g", "val", tmp_path / "g.json", dataset.images, samples)
    timer = ModelTimer()
    preds, _ = predict_grounding(model, gd, num_workers=0, timer=timer)
    assert timer.calls["backbone"] == 2 and timer.calls["head"] == 3  # one backbone pass per image
    for s, p in zip(samples, preds):
        pm = positive_map(model.tokenizer, s.caption, [ph.spans for ph in s.phrases])
        d = model.detect(model.preprocess([gd.load_image(s.id)]), [s.caption], [pm])[0]
        assert p["image_id"] == s.id and len(p["boxes"]) == len(s.phrases)
        for j in range(len(s.phrases)):
            sel = d.labels == j
            order = d.scores[sel].argsort(descending=True, stable=True)
            assert p["scores"][j] == d.scores[sel][order].tolist()
            assert p["boxes"][j] == d.boxes_xyxy[sel][order].tolist()
    assert sum(len(b) for p in preds for b in p["boxes"]) > 0
    json.dumps(preds)  # the prediction file format is plain JSON


def test_bf16_autocast_runs_the_model_in_bf16_and_stays_close(model, world):
    """autocast_dtype=bfloat16 (the GPU speed setting) on CPU: the model's linear layers really compute in
    bf16, the predictions come back as float32 COCO entries, and the top detections agree with float32."""
    dataset, chunks, _ = world
    seen: list[torch.dtype] = []
    hook = model.head.dot_product_projection_text.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        fp32, _ = predict_detection(model, dataset, chunks[:1], cap=30, batch_size=4, num_workers=0)
        assert set(seen) == {torch.float32}
        seen.clear()
        bf16, _ = predict_detection(model, dataset, chunks[:1], cap=30, batch_size=4, num_workers=0,
                                    autocast_dtype=torch.bfloat16)
    finally:
        hook.remove()
    assert set(seen) == {torch.bfloat16}
    assert len(bf16) > 50 and all(isinstance(v, float) for p in bf16 for v in (*p["bbox"], p["score"]))
    for image_id in dataset.image_ids:  # each image's best bf16 detection is one of float32's best ones
        ours = [p for p in fp32 if p["image_id"] == image_id]
        a = max(ours, key=lambda p: p["score"])
        b = max((p for p in bf16 if p["image_id"] == image_id), key=lambda p: p["score"])
        assert abs(a["score"] - b["score"]) < 0.01
        # within bf16's precision of the top score two classes can swap places; their boxes must agree
        near_top = [p for p in ours if p["score"] > a["score"] - 0.01 and p["category_id"] == b["category_id"]]
        assert any(np.allclose(p["bbox"], b["bbox"], atol=0.5) for p in near_top)


def test_detect_chunks_caps_per_call_without_touching_the_model(model, world):
    """cap=k keeps each image's k best of what the model's own cap (100) keeps, chunk by chunk."""
    dataset, chunks, _ = world
    images = model.preprocess([dataset.load_image(i) for i in dataset.image_ids[:2]])
    texts = encode_prompts(model, [ch.caption for ch in chunks[:2]])
    maps = [ch.positive_map for ch in chunks[:2]]
    full = detect_chunks(model, images, texts, maps)
    capped = detect_chunks(model, images, texts, maps, cap=3)
    assert all(len(d) > 3 for per_image in full for d in per_image)  # the cap really cuts something
    for per_full, per_capped in zip(full, capped):
        for f, c in zip(per_full, per_capped):
            assert len(c) == 3 and torch.equal(c.scores, f.scores[:3]) and torch.equal(c.boxes_xyxy, f.boxes_xyxy[:3])
    assert model.postprocessor.detections_per_img == 100


@pytest.mark.parametrize("fusion", ["deep", "late"])
def test_engine_runs_the_heads_own_prediction_layers(world, monkeypatch, fusion):
    """A change to VLDyHead.predict reaches the cached engine and model.detect alike: there is no second copy
    of the head's tail to fork (deep and late fusion)."""
    dataset, chunks, _ = world
    torch.manual_seed(2)
    m = GLIP(get_preset("glip-tiny", fusion=fusion)).eval()
    with torch.no_grad():
        m.head.bias0.fill_(0.0)
    before, _ = predict_detection(m, dataset, chunks[:2], cap=30, num_workers=0)
    predict = VLDyHead.predict

    def halved(self, *args, **kwargs):
        out = predict(self, *args, **kwargs)
        return HeadOutputs([x * 0.5 for x in out.logits], out.bbox_reg, out.centerness)

    monkeypatch.setattr(VLDyHead, "predict", halved)
    after, _ = predict_detection(m, dataset, chunks[:2], cap=30, num_workers=0)
    assert len(after) > 50 and after == _naive(m, dataset, chunks[:2], cap=30)
    assert [p["score"] for p in after] != [p["score"] for p in before]
