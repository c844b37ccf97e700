"""Box formats, area, IoU, GIoU and clipping against hand cases and brute-force loops."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from glip.ops.boxes import (
    box_area,
    box_iou,
    clip_boxes,
    clip_boxes_per_image,
    generalized_box_iou,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

coord = st.floats(min_value=-1000, max_value=1000, allow_nan=False, width=32)
size = st.floats(min_value=0, max_value=1000, allow_nan=False, width=32)
box_lists = st.lists(st.tuples(coord, coord, size, size), min_size=0, max_size=20)


def _tensor(rows):
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)


@settings(max_examples=60, deadline=None)
@given(rows=box_lists, legacy=st.booleans())
def test_xywh_xyxy_round_trip(rows, legacy):
    xywh = _tensor(rows)
    xyxy = xywh_to_xyxy(xywh, legacy=legacy)
    torch.testing.assert_close(xyxy_to_xywh(xyxy, legacy=legacy), xywh)


@settings(max_examples=60, deadline=None)
@given(rows=box_lists, legacy=st.booleans())
def test_xyxy_xywh_round_trip(rows, legacy):
    # (x1, y1, x1 + a, y1 + b) with a, b >= 0 is a valid xyxy box
    xyxy = _tensor([(x, y, x + a, y + b) for x, y, a, b in rows])
    torch.testing.assert_close(xywh_to_xyxy(xyxy_to_xywh(xyxy, legacy=legacy), legacy=legacy), xyxy)


def test_plus_one_convention_hand_cases():
    # a box covering pixels 10..19 (10 pixels) is [10, 10, 19, 19] in the legacy convention
    xywh = torch.tensor([[10.0, 20.0, 10.0, 5.0]])
    assert xywh_to_xyxy(xywh).tolist() == [[10.0, 20.0, 19.0, 24.0]]
    assert xywh_to_xyxy(xywh, legacy=False).tolist() == [[10.0, 20.0, 20.0, 25.0]]
    assert xyxy_to_xywh(torch.tensor([[10.0, 20.0, 19.0, 24.0]])).tolist() == [[10.0, 20.0, 10.0, 5.0]]
    assert box_area(torch.tensor([[0.0, 0.0, 9.0, 4.0]])).tolist() == [50.0]
    assert box_area(torch.tensor([[0.0, 0.0, 9.0, 4.0]]), legacy=False).tolist() == [36.0]
    # a single pixel box has area 1 (legacy) and 0 (continuous)
    assert box_area(torch.tensor([[3.0, 3.0, 3.0, 3.0]])).tolist() == [1.0]
    # [0,0,9,9] vs [5,0,14,9]: intersection 5x10 = 50, union 100 + 100 - 50 = 150
    a, b = torch.tensor([[0.0, 0.0, 9.0, 9.0]]), torch.tensor([[5.0, 0.0, 14.0, 9.0]])
    assert box_iou(a, b).item() == pytest.approx(50 / 150)
    # continuous: intersection 4x9 = 36, union 81 + 81 - 36 = 126
    assert box_iou(a, b, legacy=False).item() == pytest.approx(36 / 126)
    # boxes touching at one pixel column overlap under +1, not in the continuous convention
    c = torch.tensor([[9.0, 0.0, 18.0, 9.0]])
    assert box_iou(a, c).item() == pytest.approx(10 / 190)
    assert box_iou(a, c, legacy=False).item() == 0.0
    # GIoU of disjoint boxes: [0,0,9,9] and [20,0,29,9], enclosing 30x10 = 300, union 200
    d = torch.tensor([[20.0, 0.0, 29.0, 9.0]])
    assert generalized_box_iou(a, d).item() == pytest.approx(0 - (300 - 200) / 300)


def _brute_iou_giou(a, b, legacy):
    r = 1.0 if legacy else 0.0
    iou = torch.zeros(len(a), len(b), dtype=torch.float64)
    giou = torch.zeros_like(iou)
    for i, j in itertools.product(range(len(a)), range(len(b))):
        ax1, ay1, ax2, ay2 = a[i].tolist()
        bx1, by1, bx2, by2 = b[j].tolist()
        iw = max(0.0, min(ax2, bx2) - max(ax1, bx1) + r)
        ih = max(0.0, min(ay2, by2) - max(ay1, by1) + r)
        inter = iw * ih
        area_a = (ax2 - ax1 + r) * (ay2 - ay1 + r)
        area_b = (bx2 - bx1 + r) * (by2 - by1 + r)
        union = area_a + area_b - inter
        enc = (max(ax2, bx2) - min(ax1, bx1) + r) * (max(ay2, by2) - min(ay1, by1) + r)
        iou[i, j] = inter / union
        giou[i, j] = inter / union - (enc - union) / enc
    return iou, giou


def _random_boxes(n, gen):
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 50
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 30 + 1
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iou_and_giou_match_brute_force(seed, legacy):
    gen = torch.Generator().manual_seed(seed)
    a, b = _random_boxes(13, gen), _random_boxes(7, gen)
    iou_ref, giou_ref = _brute_iou_giou(a, b, legacy)
    torch.testing.assert_close(box_iou(a, b, legacy=legacy), iou_ref)
    torch.testing.assert_close(generalized_box_iou(a, b, legacy=legacy), giou_ref)
    assert bool((giou_ref <= iou_ref + 1e-12).all()) and bool((giou_ref > -1).all())


def test_iou_empty_and_differentiable():
    assert box_iou(torch.zeros(0, 4), torch.zeros(3, 4)).shape == (0, 3)
    a = torch.tensor([[0.0, 0.0, 9.0, 9.0]], requires_grad=True)
    generalized_box_iou(a, torch.tensor([[5.0, 5.0, 20.0, 20.0]])).sum().backward()
    assert a.grad is not None and bool(torch.isfinite(a.grad).all()) and a.grad.abs().sum() > 0


def test_clip_boxes_official_range():
    boxes = torch.tensor([[-5.0, -3.0, 120.0, 40.0], [10.0, 10.0, 20.0, 20.0]])
    # image 50 high, 100 wide: legacy x in [0, 99], y in [0, 49]
    assert clip_boxes(boxes, 50, 100).tolist() == [[0.0, 0.0, 99.0, 40.0], [10.0, 10.0, 20.0, 20.0]]
    assert clip_boxes(boxes, 50, 100, legacy=False).tolist() == [[0.0, 0.0, 100.0, 40.0], [10.0, 10.0, 20.0, 20.0]]


@pytest.mark.parametrize("legacy", [True, False])
def test_clip_boxes_per_image_equals_clip_boxes_image_by_image(legacy):
    boxes = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80 + 30
    sizes = [(50, 100), (64, 32), (20, 20)]
    batched = clip_boxes_per_image(boxes, sizes, legacy=legacy)
    for b, (h, w) in enumerate(sizes):
        assert torch.equal(batched[b], clip_boxes(boxes[b], h, w, legacy=legacy))
    with pytest.raises(ValueError, match=r"\[3, K, 4\]"):
        clip_boxes_per_image(boxes[:2], sizes)


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        box_area(torch.zeros(3, 5))
