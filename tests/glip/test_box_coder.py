"""BoxCoder: legacy +1 deltas, round trip, the official clamp."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from glip.box_coder import BoxCoder


def test_hand_case():
    coder = BoxCoder()
    anchor = torch.tensor([[0.0, 0.0, 9.0, 9.0]])  # width 10, centre 4.5
    gt = torch.tensor([[0.0, 0.0, 19.0, 9.0]])  # width 20, centre (9.5, 4.5)
    deltas = coder.encode(gt, anchor)
    torch.testing.assert_close(deltas, torch.tensor([[10 * 5.0 / 10, 0.0, 5 * math.log(2.0), 0.0]]))
    torch.testing.assert_close(coder.decode(deltas, anchor), gt)
    # zero deltas give the anchor back
    torch.testing.assert_close(coder.decode(torch.zeros(1, 4), anchor), anchor)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_decode_encode_round_trip(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 16
    a_xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 500
    a_wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 200 + 1
    g_xy = a_xy + torch.randn(n, 2, generator=gen, dtype=torch.float64) * 50
    g_wh = a_wh * torch.exp(torch.randn(n, 2, generator=gen, dtype=torch.float64))  # within the clamp
    anchors = torch.cat([a_xy, a_xy + a_wh - 1], dim=1)
    gt = torch.cat([g_xy, g_xy + g_wh - 1], dim=1)
    coder = BoxCoder()
    torch.testing.assert_close(coder.decode(coder.encode(gt, anchors), anchors), gt)


def test_official_clamp():
    coder = BoxCoder()
    anchor = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    # dw / 5 = 10 > log(1000/16): the width is capped at 62.5 x the anchor width (10 -> 625)
    boxes = coder.decode(torch.tensor([[0.0, 0.0, 50.0, 50.0]]), anchor)
    w = boxes[0, 2] - boxes[0, 0] + 1
    torch.testing.assert_close(w, torch.tensor(625.0))
    torch.testing.assert_close((boxes[0, 0] + boxes[0, 2]) / 2, torch.tensor(4.5))
    # the clamp acts on dw / weight: dw = 5 * log(1000/16) is exactly at the cap, not beyond
    at_cap = coder.decode(torch.tensor([[0.0, 0.0, 5 * math.log(62.5), 0.0]]), anchor)
    torch.testing.assert_close(at_cap[0, 2] - at_cap[0, 0] + 1, torch.tensor(625.0))
    # negative dw is not clamped
    small = coder.decode(torch.tensor([[0.0, 0.0, -50.0, 0.0]]), anchor)
    torch.testing.assert_close(small[0, 2] - small[0, 0] + 1, torch.tensor(10.0 * math.exp(-10)))


def test_decode_is_differentiable():
    deltas = torch.zeros(3, 4, requires_grad=True)
    anchors = torch.tensor([[0.0, 0.0, 9.0, 9.0]] * 3)
    BoxCoder().decode(deltas, anchors).sum().backward()
    assert deltas.grad is not None and bool(torch.isfinite(deltas.grad).all())
