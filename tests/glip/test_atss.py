"""ATSS assignment on hand-built cases and against a loop-by-loop reference."""

import math
import statistics

import pytest
import torch

from glip.anchors import AnchorGenerator
from glip.atss import atss_assign


def _square(cx, cy, side):
    """Legacy xyxy box of `side` pixels centred on (cx, cy)."""
    h = (side - 1) / 2
    return [cx - h, cy - h, cx + h, cy + h]


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)  # noqa: E731
    return iw * ih / (area(a) + area(b) - iw * ih)


def test_centre_outside_the_box_is_negative():
    gt = torch.tensor([[0.0, 0.0, 9.0, 99.0]])  # tall: 10 x 100, centre (4.5, 49.5)
    near = [[2.0, 45.0, 7.0, 54.0], [2.0, 30.0, 7.0, 39.0]]  # IoU 0.06 each, centres inside
    far = [[300.0, 300.0, 309.0, 309.0]]
    outside = [5.0, 0.0, 24.0, 99.0]  # centre x 14.5 > 9: outside; IoU 500 / 2500 = 0.2
    ious = [_iou(a, gt[0].tolist()) for a in near + [outside]]
    thresh = statistics.mean(ious) + statistics.stdev(ious)
    assert max(ious) == pytest.approx(0.2) and 0.2 >= thresh  # it passes the IoU test...
    got = atss_assign([torch.tensor(near + [outside] + far)], gt, topk=3)
    assert got.tolist() == [-1, -1, -1, -1]  # ...but not the centre test
    inside = [-5.0, 0.0, 14.0, 99.0]  # same size, centre 4.5: IoU 0.5, inside
    got = atss_assign([torch.tensor(near + [inside] + far)], gt, topk=3)
    assert got.tolist() == [-1, -1, 0, -1]


def test_highest_iou_wins():
    gt1, gt2 = [0.0, 0.0, 39.0, 39.0], [10.0, 10.0, 49.0, 49.0]
    p = [8.0, 8.0, 39.0, 39.0]  # IoU 0.64 with gt1, 900 / 1724 = 0.52 with gt2, centre inside both
    anchors = torch.tensor([[15.0, 15.0, 24.0, 24.0], p, [25.0, 25.0, 34.0, 34.0], [100.0, 100.0, 139.0, 139.0]])
    assert _iou(p, gt1) > _iou(p, gt2)
    got = atss_assign([anchors], torch.tensor([gt1, gt2]), topk=3)
    assert got.tolist() == [-1, 0, -1, -1]
    got = atss_assign([anchors], torch.tensor([gt2, gt1]), topk=3)  # order does not matter, IoU does
    assert got.tolist() == [-1, 1, -1, -1]
    # alone, gt2 claims the anchor: it was positive for both
    assert atss_assign([anchors], torch.tensor([gt2]), topk=3).tolist() == [-1, 0, -1, -1]


def test_threshold_uses_unbiased_std():
    gt = torch.tensor([[0.0, 0.0, 99.0, 99.0]])  # 100 x 100
    sides = [20, 30, 40, 42]  # fully inside: IoU = side^2 / 10000
    anchors = torch.tensor([_square(49.5 + k, 49.5, s) for k, s in enumerate(sides)])
    ious = [s * s / 10000 for s in sides]
    mean = statistics.mean(ious)
    assert mean + statistics.pstdev(ious) <= ious[-1] < mean + statistics.stdev(ious)
    # with torch.std (unbiased, the official) the best candidate stays below the threshold
    assert atss_assign([anchors], gt, topk=4).tolist() == [-1, -1, -1, -1]


def test_topk_per_level_and_empty_gt():
    gen = AnchorGenerator(strides=(8, 16), sizes=(64, 128))
    levels = gen([(6, 6), (3, 3)])
    assert atss_assign(levels, torch.zeros(0, 4)).tolist() == [-1] * 45
    with pytest.raises(ValueError, match=r"\[G, 4\]"):
        atss_assign(levels, torch.zeros(4))


def _reference(levels, gts, topk):
    """ATSS one gt and one anchor at a time."""
    anchors = [a for lv in levels for a in lv.tolist()]
    best = [(-math.inf, -1)] * len(anchors)
    for g, gt in enumerate(gts.tolist()):
        gcx, gcy = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2
        cands, start = [], 0
        for lv in levels:
            idx = list(range(start, start + len(lv)))
            dist = {i: math.hypot((anchors[i][0] + anchors[i][2]) / 2 - gcx,
                                  (anchors[i][1] + anchors[i][3]) / 2 - gcy) for i in idx}
            cands += sorted(idx, key=dist.get)[:topk]
            start += len(lv)
        ious = [_iou(anchors[i], gt) for i in cands]
        thresh = statistics.mean(ious) + statistics.stdev(ious)
        for i, v in zip(cands, ious):
            cx, cy = (anchors[i][0] + anchors[i][2]) / 2, (anchors[i][1] + anchors[i][3]) / 2
            inside = min(cx - gt[0], cy - gt[1], gt[2] - cx, gt[3] - cy) > 0.01
            if v >= thresh and inside and v > best[i][0]:
                best[i] = (v, g)
    return [g for _, g in best]


@pytest.mark.parametrize("seed", range(4))
def test_matches_loop_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    levels = AnchorGenerator(strides=(8, 16, 32), sizes=(64, 128, 256))([(16, 16), (8, 8), (4, 4)])
    xy = torch.rand(5, 2, generator=gen, dtype=torch.float64) * 90
    wh = torch.rand(5, 2, generator=gen, dtype=torch.float64) * 60 + 8
    gts = torch.cat([xy, xy + wh], dim=1).float()
    got = atss_assign(levels, gts, topk=9)
    ref = _reference(levels, gts, 9)
    assert got.tolist() == ref
    assert sum(r >= 0 for r in ref) >= 5  # the case has positives
