"""NMS and class-aware NMS against a brute-force greedy reference."""

import pytest
import torch

from glip.ops.nms import batched_nms, nms


def _iou_legacy(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _greedy_reference(boxes, scores, labels, thr):
    """Textbook greedy NMS, one box at a time, in plain python."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(labels[i] != labels[k] or _iou_legacy(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def _random_case(seed, n, num_labels):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 60
    wh = torch.rand(n, 2, generator=gen) * 40 + 2
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.randperm(n, generator=gen).float() / n + 0.01  # distinct: no ties
    labels = torch.randint(0, num_labels, (n,), generator=gen)
    return boxes, scores, labels


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_greedy_reference(seed, thr):
    boxes, scores, _ = _random_case(seed, 120, 1)
    ref = _greedy_reference(boxes.tolist(), scores.tolist(), [0] * len(scores), thr)
    keep = nms(boxes, scores, thr)
    assert keep.dtype == torch.long
    assert keep.tolist() == ref
    assert 0 < len(ref) < len(scores)  # the case really suppresses something


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_matches_per_class_greedy_reference(seed):
    boxes, scores, labels = _random_case(100 + seed, 150, 4)
    ref = _greedy_reference(boxes.tolist(), scores.tolist(), labels.tolist(), 0.5)
    keep = batched_nms(boxes, scores, labels, 0.5)
    # indices refer to the input (the official CPU fallback returned per-class local indices)
    assert keep.tolist() == ref
    assert len(ref) > len(nms(boxes, scores, 0.5))


@pytest.mark.parametrize("num_labels", [1, 3, 700])
def test_many_boxes_across_blocks(num_labels):
    """More boxes than one block (256), dense clusters as a detector produces them."""
    gen = torch.Generator().manual_seed(7)
    n = 700
    centres = torch.rand(12, 2, generator=gen) * 200
    pick = torch.randint(0, 12, (n,), generator=gen)
    ctr = centres[pick] + torch.randn(n, 2, generator=gen) * 6
    wh = torch.rand(12, 2, generator=gen)[pick] * 60 + 15 + torch.randn(n, 2, generator=gen)
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1)
    scores = torch.randperm(n, generator=gen).float() / n + 0.01
    labels = torch.randint(0, num_labels, (n,), generator=gen)
    ref = _greedy_reference(boxes.tolist(), scores.tolist(), labels.tolist(), 0.6)
    got = batched_nms(boxes, scores, labels, 0.6) if num_labels > 1 else nms(boxes, scores, 0.6)
    assert got.tolist() == ref
    assert len(ref) < n


def test_chain_of_overlaps_is_resolved_greedily():
    # sliding boxes: each overlaps its neighbour (IoU 0.78) more than 0.65, the one two steps away (0.6) less,
    # scores decreasing: greedy keeps every other box
    # (300 boxes: one round per link would be slow, the scan fallback finishes such chains)
    x = torch.arange(300).float() * 8
    boxes = torch.stack([x, torch.zeros(300), x + 63, torch.full((300,), 63.0)], dim=1)
    scores = torch.linspace(1.0, 0.5, 300)
    ref = _greedy_reference(boxes.tolist(), scores.tolist(), [0] * 300, 0.65)
    assert nms(boxes, scores, 0.65).tolist() == ref == list(range(0, 300, 2))


def test_same_box_two_labels_both_kept():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([0, 1, 0])
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.5).tolist() == [0]


def test_empty_input():
    keep = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.long
    keep = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.long


def test_threshold_is_strict_and_legacy():
    # [0,0,9,9] vs [5,0,14,9]: legacy IoU exactly 50/150 = 1/3; suppression needs IoU > threshold
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]])
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, 0.34).tolist() == [0, 1]
    assert nms(boxes, scores, 0.33).tolist() == [0]
    # continuous IoU is 36/126 = 0.286 < 0.3: not suppressed without the +1
    assert nms(boxes, scores, 0.3, legacy=False).tolist() == [0, 1]


def test_shape_errors():
    with pytest.raises(ValueError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)


@pytest.mark.parametrize("max_rounds", [0, 2, 1000])
def test_rounds_and_scan_agree_on_random_suppression_graphs(max_rounds):
    from glip.ops.nms import _greedy_keep

    gen = torch.Generator().manual_seed(max_rounds)
    for density in (0.02, 0.1, 0.5):
        over = (torch.rand(90, 90, generator=gen) < density).triu(diagonal=1)
        want, suppressed = [], set()
        for i in range(90):  # the textbook scan
            if i not in suppressed:
                want.append(i)
                suppressed |= set(over[i].nonzero().flatten().tolist())
        assert _greedy_keep(over.clone(), max_rounds=max_rounds).nonzero().flatten().tolist() == want
