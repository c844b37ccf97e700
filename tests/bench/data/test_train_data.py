"""Training samples: boxes follow the image through flip and resize; collate pads; grounding json; pretrain."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.training import (
    GroundingTrainSet,
    TrainInput,
    TrainSample,
    collate,
    load_grounding_entries,
    make_sample,
)
from bench.util.errors import UserError
from glip.config import get_preset
from glip.structures import TrainTarget
from glip.transforms import hflip_boxes


def recipe(min_sizes, max_size=1333, flip_prob=1.0) -> TrainInput:
    """Pixels as they are (mean 0, std 1): enough to check where the box's pixels went."""
    return TrainInput(tuple(min_sizes), max_size, flip_prob, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def test_flip_legacy_convention():
    # a box covering pixel columns 0..9 in a 100-wide image covers 90..99 after the flip (BoxList.transpose)
    assert hflip_boxes(torch.tensor([[0.0, 5, 9, 20]]), 100).tolist() == [[90.0, 5, 99, 20]]


def test_sample_geometry_resize_then_flip_and_pixels():
    arr = np.zeros((40, 60, 3), dtype=np.uint8)
    arr[10:20, 5:15] = 255  # the box's pixels: x 5..14, y 10..19
    boxes = torch.tensor([[5.0, 10, 14, 19], [0, 0, 0, 0]])  # the second box is empty after clipping rules
    pmap = torch.eye(2, 256)
    s = make_sample(Image.fromarray(arr), boxes, pmap, "cap", recipe([80]), random.Random(0))
    assert s.image_size == (80, 120) and s.original_size == (40, 60) and s.caption == "cap"
    # official order: resize (shorter side 40 -> 80: every coordinate x2, BoxList.resize) -> [10, 20, 28, 38],
    # then the flip in the 120-wide resized image (x -> 120 - 1 - x, BoxList.transpose): [91, 20, 109, 38]
    assert s.target.boxes_xyxy.tolist() == [[91.0, 20, 109, 38]]
    assert torch.equal(s.target.positive_map, pmap[:1])
    img = s.image[0]
    assert img[22:36, 92:108].min() == 255 and img[22:36, 12:26].max() == 0  # the pixels moved with the box


def test_longer_side_capped():
    # 300 x 100 at shorter side 800 would be 2400 long > 1333: shorter side round(1333 * 100 / 300) = 444
    s = make_sample(Image.new("RGB", (300, 100)), torch.tensor([[0.0, 0, 299, 99]]), torch.eye(1, 256), "c",
                    recipe([800], flip_prob=0.0), random.Random(0))
    assert s.image_size == (444, 1332)
    assert s.target.boxes_xyxy.tolist() == [[0.0, 0.0, pytest.approx(299 * 1332 / 300), pytest.approx(99 * 4.44)]]


def test_training_sizes_drawn_from_the_official_list():
    official = (480, 560, 640, 720, 800)  # AUGMENT.MULT_MIN_SIZE_TRAIN, MAX_SIZE_TRAIN 1333
    pipeline = TrainInput.of(get_preset("glip-t"))
    assert pipeline.min_sizes == official and pipeline.max_size == 1333 and pipeline.flip_prob == 0.5
    rng = random.Random(3)
    seen = [make_sample(Image.new("RGB", (40, 30)), torch.tensor([[1.0, 1, 9, 9]]), torch.eye(1, 256), "c",
                        pipeline, rng).image_size for _ in range(40)]
    assert {min(hw) for hw in seen} == set(official)  # every size of the list drawn, and no other
    assert all(max(hw) <= 1333 for hw in seen)


def test_single_scale_preset_keeps_its_scale():
    """glip-synth trains at its test scale (128): its samples are the inference pixels, unflipped or flipped."""
    from bench.synthetic.preset import glip_synth

    cfg = glip_synth()
    assert tuple(cfg.train_min_sizes) == (cfg.min_size,) == (128,)
    s = make_sample(Image.new("RGB", (128, 128)), torch.tensor([[1.0, 1, 9, 9]]), torch.eye(1, 256), "c",
                    TrainInput.of(cfg), random.Random(0))
    assert s.image_size == (128, 128)


def test_collate_pads_to_multiple():
    t = TrainTarget(torch.zeros(0, 4), torch.zeros(0, 256))
    a = TrainSample(torch.ones(3, 40, 50), (40, 50), (40, 50), "a", t)
    b = TrainSample(torch.ones(3, 70, 20), (70, 20), (70, 20), "b", t)
    batch, caps, targets = collate([a, b], 32)
    assert batch.tensor.shape == (2, 3, 96, 64) and caps == ["a", "b"] and len(targets) == 2
    assert batch.tensor[0, :, :40, :50].min() == 1 and batch.tensor[0].sum() == 3 * 40 * 50  # zero padding
    with pytest.raises(ValueError):
        collate([])


def write_mdetr(tmp_path, n=2):
    images, anns = [], []
    for i in range(1, n + 1):
        arr = np.full((64, 80, 3), 100, dtype=np.uint8)
        arr[10:30, 20:50] = (220, 30, 30)
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
        caption = "a red square next to nothing"
        images.append({"id": i, "file_name": f"{i}.png", "height": 64, "width": 80, "caption": caption})
        anns.append({"id": i, "image_id": i, "bbox": [20, 10, 30, 20], "tokens_positive": [[2, 12]], "category_id": 1})
        anns.append({"id": 100 + i, "image_id": i, "bbox": [0, 0, 5, 5], "tokens_positive": [], "category_id": 1})
    path = tmp_path / "grounding.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}))
    return path


def test_grounding_entries(tmp_path):
    path = write_mdetr(tmp_path)
    entries = load_grounding_entries(path, tmp_path)
    assert len(entries) == 2
    e = entries[0]
    assert e.boxes_xyxy == [[20.0, 10.0, 49.0, 29.0]] and e.spans == [[(2, 12)]]  # box without words dropped
    assert e.caption[2:12] == "red square"
    (tmp_path / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(UserError, match="annotations"):
        load_grounding_entries(tmp_path / "bad.json", tmp_path)


def test_grounding_samples_and_pretrain(tmp_path):
    from bench.runs.train import pretrain
    from glip.config import get_preset
    from glip.model import GLIP

    torch.manual_seed(0)
    model = GLIP(get_preset("glip-tiny"))
    path = write_mdetr(tmp_path)
    ds = GroundingTrainSet(load_grounding_entries(path, tmp_path), model.tokenizer, TrainInput.of(model.config, 0.0))
    s = ds[0]
    ids = model.tokenizer(s.caption)
    tokens = sorted({ids.char_to_token(c) for c in range(2, 12)} - {None})
    assert s.target.positive_map.shape == (1, 256) and s.target.positive_map[0].nonzero().flatten().tolist() == tokens
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    res = pretrain(model, [path], [tmp_path], max_iters=1, batch_size=2, lr=1e-3, frozen_groups=("backbone_stem",))
    assert res.iters == 1 and res.images_seen == 2
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and not changed & set(model.parameter_groups()["backbone_stem"])
    with pytest.raises(ValueError, match="unknown pre-training settings"):
        pretrain(model, [path], [tmp_path], max_iters=1, learning_rate=1.0)


def test_pretraining_draws_a_progress_bar_with_eta(tmp_path, monkeypatch, capsys):
    """The demo's pretraining is minutes long: its steps show as a bar with rate, ETA and the running loss."""
    from bench.runs.train import pretrain
    from glip.config import get_preset
    from glip.model import GLIP

    monkeypatch.delenv("GLIP_BENCH_NO_PROGRESS", raising=False)
    torch.manual_seed(0)
    model = GLIP(get_preset("glip-tiny"))
    path = write_mdetr(tmp_path)
    pretrain(model, [path], [tmp_path], max_iters=2, max_epochs=10, batch_size=2, lr=1e-3,
             progress=("pretrain deep", 0))
    err = capsys.readouterr().err
    assert "pretrain deep" in err and "2/2" in err and ("step/s" in err or "s/step" in err) and "<" in err and "loss=" in err
    pretrain(model, [path], [tmp_path], max_iters=1, batch_size=2, lr=1e-3)  # no bar unless asked for
    assert "pretrain" not in capsys.readouterr().err
