"""Loss values against hand-computed numbers on tiny inputs."""

import math

import pytest
import torch

from glip.head_outputs import HeadOutputs
from glip.losses import GLIPLoss, centerness_targets, giou_loss, soft_token_loss, token_sigmoid_focal_loss
from glip.structures import TrainTarget


def _focal(x, t, alpha=0.25, gamma=2.0):
    """One element of the binary focal loss, by hand."""
    p = 1 / (1 + math.exp(-x))
    ce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    a_t = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else 1.0
    return a_t * (1 - p_t) ** gamma * ce


def _bce(x, y):
    p = 1 / (1 + math.exp(-x))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_focal_loss_hand_numbers_and_text_mask():
    logits = torch.tensor([[[0.0, 2.0, -1.0, 8.0]]])  # [B=1, A=1, T=4]
    targets = torch.tensor([[[1.0, 0.0, 1.0, 0.0]]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the last token is padding: its large loss must not count
    # x=0, t=1: 0.25 * 0.5^2 * log 2
    assert _focal(0.0, 1.0) == pytest.approx(0.25 * 0.25 * math.log(2))
    want = _focal(0.0, 1.0) + _focal(2.0, 0.0) + _focal(-1.0, 1.0)
    got = token_sigmoid_focal_loss(logits, targets, mask)
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert _focal(8.0, 0.0) > 3 * want  # the excluded term would dominate
    full = token_sigmoid_focal_loss(logits, targets, torch.ones(1, 4))
    assert full.item() == pytest.approx(want + _focal(8.0, 0.0), rel=1e-6)
    no_alpha = token_sigmoid_focal_loss(logits, targets, mask, alpha=-1, gamma=0.0)
    assert no_alpha.item() == pytest.approx(_bce(0.0, 1) + _bce(2.0, 0) + _bce(-1.0, 1), rel=1e-6)


def test_centerness_targets_hand():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])  # centre (5, 5)
    gts = torch.tensor([[0.0, 0.0, 20.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    # l=5, r=15, t=b=5 -> sqrt(5/15); a centred box -> 1
    torch.testing.assert_close(centerness_targets(anchors, gts), torch.tensor([math.sqrt(1 / 3), 1.0]))


def test_giou_loss_hand():
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 5.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    target = torch.tensor([[20.0, 0.0, 30.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    got = giou_loss(pred, target)
    # disjoint: IoU 0, enclosing 300, union 200 -> 1 + 100/300; inverted pred (x2 < x1) has zero area
    # (x2 raised to x1), enclosing 100 = union -> loss 1; identical boxes -> 0 (up to the 1e-7 terms)
    torch.testing.assert_close(got, torch.tensor([1 + 100 / 300, 1.0, 0.0]), atol=1e-5, rtol=0)


def _tiny_case():
    """One level of 4 anchors; ATSS (topk=3) makes anchor 2 the only positive in both images."""
    anchors = torch.tensor([[2.0, 45.0, 7.0, 54.0], [2.0, 30.0, 7.0, 39.0], [-5.0, 0.0, 14.0, 99.0],
                            [300.0, 300.0, 309.0, 309.0]])
    targets = [
        TrainTarget(torch.tensor([[0.0, 0.0, 9.0, 99.0]]), torch.tensor([[0.0, 1.0, 1.0, 0.0]])),
        TrainTarget(torch.tensor([[-2.0, 0.0, 9.0, 99.0]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]])),
    ]
    text_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 4, generator=gen) * 2
    logits[:, :, 3] = 9.0  # padded positions: large losses if they were counted
    logits[1, :, 2] = 9.0
    bbox = torch.zeros(2, 4, 4)
    bbox[0, 2, 0] = 1.0  # dx = 1/10 of the anchor width (20): the box moves right by 2
    ctr = torch.tensor([[0.3, -1.0, 0.5, 2.0], [0.1, 0.2, -0.7, 0.4]])
    return anchors, targets, text_mask, logits, bbox, ctr


def test_glip_loss_hand_numbers():
    anchors, targets, text_mask, logits, bbox, ctr = _tiny_case()
    logits.requires_grad_()
    bbox.requires_grad_()
    ctr.requires_grad_()
    out = GLIPLoss(topk=3)(HeadOutputs([logits], [bbox], [ctr]), [anchors], targets, text_mask)

    token_targets = [[[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]],
                     [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]]
    token = sum(_focal(logits[b, a, t].item(), token_targets[b][a][t])
                for b in range(2) for a in range(4) for t in range(4) if text_mask[b, t])
    num_pos = 2
    assert out["loss_token"].item() == pytest.approx(token / num_pos, rel=1e-5)

    # image 0: pred [-3, 0, 16, 99] vs gt [0, 0, 9, 99]: continuous areas 19*99 and 9*99, the gt inside
    loss0 = 1 - (9 * 99) / (19 * 99)
    ctr0 = 1.0  # anchor centre (4.5, 49.5) is the gt centre
    # image 1: pred = anchor [-5, 0, 14, 99] vs gt [-2, 0, 9, 99]: 11*99 inside 19*99
    loss1 = 1 - (11 * 99) / (19 * 99)
    ctr1 = math.sqrt(4.5 / 6.5)  # l = 6.5, r = 4.5; t = b
    reg = 2.0 * (loss0 * ctr0 + loss1 * ctr1) / (ctr0 + ctr1)
    assert out["loss_reg"].item() == pytest.approx(reg, rel=1e-5)
    cent = (_bce(0.5, ctr0) + _bce(-0.7, ctr1)) / num_pos
    assert out["loss_centerness"].item() == pytest.approx(cent, rel=1e-5)

    sum(out.values()).backward()
    assert bool((bbox.grad[:, [0, 1, 3]] == 0).all()) and bbox.grad[:, 2].abs().sum() > 0
    assert logits.grad[0, :, 3].abs().sum() == 0  # masked tokens get no gradient


def test_glip_loss_without_positives():
    anchors, _, text_mask, logits, bbox, ctr = _tiny_case()
    bbox.requires_grad_()
    far = [TrainTarget(torch.tensor([[1000.0, 1000.0, 1001.0, 1001.0]]), torch.tensor([[1.0, 0, 0, 0]])),
           TrainTarget(torch.zeros(0, 4), torch.zeros(0, 4))]
    out = GLIPLoss(topk=3)(HeadOutputs([logits], [bbox], [ctr]), [anchors], far, text_mask)
    token = sum(_focal(logits[b, a, t].item(), 0.0) for b in range(2) for a in range(4) for t in range(4)
                if text_mask[b, t])
    assert out["loss_token"].item() == pytest.approx(token, rel=1e-5)  # normalised by max(#pos, 1) = 1
    assert out["loss_reg"].item() == 0 and out["loss_centerness"].item() == 0
    out["loss_reg"].backward()  # still part of the graph


def test_glip_loss_shape_errors():
    anchors, targets, text_mask, logits, bbox, ctr = _tiny_case()
    bad = [TrainTarget(targets[0].boxes_xyxy, torch.zeros(1, 7)), targets[1]]
    with pytest.raises(ValueError, match="positive_map"):
        GLIPLoss()(HeadOutputs([logits], [bbox], [ctr]), [anchors], bad, text_mask)
    with pytest.raises(ValueError, match="anchors cover"):
        GLIPLoss()(HeadOutputs([logits], [bbox], [ctr]), [anchors[:3]], targets, text_mask)


def _soft_ce(row, target, real):
    """Cross-entropy of one anchor's softmax over the real tokens against the evenly spread target."""
    idx = [t for t in range(len(row)) if real[t]]
    log_z = math.log(sum(math.exp(row[t]) for t in idx))
    pos = [t for t in idx if target[t] > 0]
    return -sum((row[t] - log_z) / len(pos) for t in pos)


def test_soft_token_loss_hand_numbers_and_padding():
    logits = torch.tensor([[0.5, 2.0, -1.0, 9.0], [1.0, 0.0, 3.0, -9.0]])
    targets = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    real = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])  # row 0's last token is padding: never in the softmax
    want = sum(_soft_ce(logits[i].tolist(), targets[i].tolist(), real[i].tolist()) for i in range(2))
    assert soft_token_loss(logits, targets, real).item() == pytest.approx(want, rel=1e-6)


def test_glip_loss_soft_token_term():
    anchors, targets, text_mask, logits, bbox, ctr = _tiny_case()
    heads = HeadOutputs([logits], [bbox], [ctr])
    plain = GLIPLoss(topk=3)(heads, [anchors], targets, text_mask)
    out = GLIPLoss(topk=3, soft_token_weight=0.5)(heads, [anchors], targets, text_mask)
    assert "loss_soft_token" not in plain
    for k in plain:  # the official terms are untouched
        assert out[k].item() == pytest.approx(plain[k].item())
    # positives (see test_glip_loss_hand_numbers): image 0 anchor 2 -> tokens 1, 2; image 1 anchor 2 -> token 0
    soft = (_soft_ce(logits[0, 2].tolist(), [0, 1, 1, 0], text_mask[0].tolist())
            + _soft_ce(logits[1, 2].tolist(), [1, 0, 0, 0], text_mask[1].tolist()))
    assert out["loss_soft_token"].item() == pytest.approx(0.5 * soft / 2, rel=1e-5)


def test_soft_token_loss_pushes_other_words_down_at_the_prior():
    """Why glip-synth uses it: at the prior init every token scores -4.6, where the focal loss gives the wrong
    words at a positive anchor almost no gradient; the soft-token loss pushes them down as hard as the right one up."""
    logits = torch.full((1, 1, 4), -4.595, requires_grad=True)
    targets = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    mask = torch.ones(1, 4)
    token_sigmoid_focal_loss(logits, targets, mask).backward()
    focal = logits.grad[0, 0].clone()
    logits.grad = None
    soft_token_loss(logits[0], targets[0], mask).backward()
    soft = logits.grad[0, 0]
    assert focal[1:].abs().max() < 1e-3 * focal[0].abs()
    assert bool((soft[1:] > 0).all()) and soft[0] < 0
    assert soft[1:].sum().item() == pytest.approx(-soft[0].item(), rel=1e-5)
