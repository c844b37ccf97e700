"""DyHead block: DyReLU constants, scale attention as a mean, and a whole DyConv level-by-level against a
direct recomputation with the DCN op (shared level-l offsets, flat reuse for the coarser level,
align_corners=True upsampling)."""

import pytest
import torch
import torch.nn.functional as F

from glip.dyhead import DyConv, DyReLU, h_sigmoid
from glip.ops.dcn import modulated_deform_conv2d, reinterpret_offset_plane


def test_h_sigmoid():
    x = torch.tensor([-4.0, -3.0, 0.0, 1.5, 3.0, 5.0])
    torch.testing.assert_close(h_sigmoid(x), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))


def test_dyrelu_neutral_init_is_relu():
    """fc output 0 -> h_sigmoid 0.5 -> a1 = 1, a2 = 0, b1 = b2 = 0 -> max(x, 0)."""
    m = DyReLU(8)
    torch.nn.init.zeros_(m.fc[2].weight)
    torch.nn.init.zeros_(m.fc[2].bias)
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(m(x), x.clamp_min(0))


def test_dyrelu_constants_by_hand():
    """Saturated coefficients (h_sigmoid = 1): a1 = (1-0.5)*2+1 = 2, a2 = (1-0.5)*2 = 1, b = 1-0.5 = 0.5;
    h_sigmoid = 0: a1 = 0, a2 = -1, b = -0.5."""
    m = DyReLU(4)
    torch.nn.init.zeros_(m.fc[2].weight)
    with torch.no_grad():
        m.fc[2].bias.copy_(torch.tensor([3.0] * 8 + [-3.0] * 8))  # a1, b1 saturate high; a2, b2 low
    a1, b1, a2, b2 = m.coefficients(torch.randn(1, 4, 2, 2))
    assert torch.all(a1 == 2) and torch.all(b1 == 0.5) and torch.all(a2 == -1) and torch.all(b2 == -0.5)
    x = torch.randn(1, 4, 2, 2)
    torch.testing.assert_close(m(x), torch.maximum(2 * x + 0.5, -x - 0.5))


def test_scale_attention_is_a_mean_of_attended_inputs():
    torch.manual_seed(0)
    m = DyConv(16, 4)
    with torch.no_grad():
        m.AttnConv[1].weight.normal_(0, 0.5)
        m.AttnConv[1].bias.fill_(0.1)
    feats = [torch.randn(2, 16, 4, 4) for _ in range(3)]
    got = m.scale_attention(feats)
    expected = 0
    for f in feats:
        a = F.relu(F.conv2d(f.mean((2, 3), keepdim=True), m.AttnConv[1].weight, m.AttnConv[1].bias))
        expected = expected + f * (F.relu6(a + 3) / 6)
    torch.testing.assert_close(got, expected / 3)
    # with two inputs it divides by two (not three)
    got2 = m.scale_attention(feats[:2])
    a = [F.relu6(F.relu(F.conv2d(f.mean((2, 3), keepdim=True), m.AttnConv[1].weight, m.AttnConv[1].bias)) + 3) / 6
         for f in feats[:2]]
    torch.testing.assert_close(got2, (feats[0] * a[0] + feats[1] * a[1]) / 2)


def reference_dyconv(m: DyConv, feats):
    """Official DyConv.forward written out with the functional DCN."""
    out = []
    for lv, x in enumerate(feats):
        om = F.conv2d(x, m.offset.weight, m.offset.bias, padding=1)
        off, mask = om[:, :18], om[:, 18:].sigmoid()

        def dcn(i, inp, stride, off=off, mask=mask):
            conv = m.DyConv[i].conv
            ho = (inp.shape[2] + 2 - 3) // stride + 1
            wo = (inp.shape[3] + 2 - 3) // stride + 1
            o = modulated_deform_conv2d(inp, reinterpret_offset_plane(off, ho, wo),
                                        reinterpret_offset_plane(mask, ho, wo), conv.weight, conv.bias, stride, 1)
            return m.DyConv[i].bn(o)

        temp = [dcn(1, x, 1)]
        if lv > 0:
            temp.append(dcn(2, feats[lv - 1], 2))
        if lv < len(feats) - 1:
            temp.append(F.interpolate(dcn(0, feats[lv + 1], 1), size=x.shape[-2:], mode="bilinear",
                                      align_corners=True))
        attn = [F.relu6(m.AttnConv(t) + 3) / 6 for t in temp]
        out.append(sum(t * a for t, a in zip(temp, attn)) / len(temp))
    return [m.relu(o) for o in out]


@pytest.mark.parametrize("sizes", [[(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)], [(7, 9), (4, 5), (2, 3), (1, 2), (1, 1)]])
def test_dyconv_matches_reference(sizes):
    torch.manual_seed(0)
    m = DyConv(16, 4).eval()
    with torch.no_grad():
        m.offset.weight.normal_(0, 0.05)  # real, non-zero offsets
    feats = [torch.randn(2, 16, h, w) for h, w in sizes]
    got = m(feats)
    ref = reference_dyconv(m, feats)
    assert [g.shape for g in got] == [f.shape for f in feats]
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


def test_upsampling_uses_align_corners_true():
    """Changing only the upsampling mode changes the output: the block really uses align_corners=True."""
    torch.manual_seed(0)
    m = DyConv(16, 4).eval()
    feats = [torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4)] + [torch.randn(1, 16, 2, 2), torch.randn(1, 16, 1, 1),
                                                                    torch.randn(1, 16, 1, 1)]
    high = m.DyConv[0](feats[1], *(lambda om: (om[:, :18], om[:, 18:].sigmoid()))(m.offset(feats[0])))
    up_true = F.interpolate(high, size=(8, 8), mode="bilinear", align_corners=True)
    up_false = F.interpolate(high, size=(8, 8), mode="bilinear", align_corners=False)
    assert not torch.allclose(up_true, up_false)
    torch.testing.assert_close(m(feats)[0], reference_dyconv(m, feats)[0], atol=1e-5, rtol=1e-5)


def test_official_parameter_count_of_one_block():
    with torch.device("meta"):
        m = DyConv(256, 16)
    # counted from the official shapes
    assert sum(p.numel() for p in m.parameters()) == pytest.approx(1.92e6, rel=3e-3)
    names = {n for n, _ in m.named_parameters()}
    assert {"DyConv.0.conv.weight", "DyConv.2.bn.bias", "AttnConv.1.weight", "relu.fc.0.weight", "relu.fc.2.bias",
            "offset.weight"} <= names


def test_zero_offset_init_starts_as_a_plain_conv():
    """dcn_offset_init="zero": no offsets and mask 0.5, so each DCN is half a plain 3x3 conv (then GroupNorm)."""
    torch.manual_seed(0)
    m = DyConv(16, 4, offset_init="zero").eval()
    x = torch.randn(2, 16, 6, 6)
    om = m.offset(x)
    assert om.abs().max() == 0
    conv = m.DyConv[1].conv
    want = m.DyConv[1].bn(F.conv2d(x, conv.weight * 0.5, conv.bias, padding=1))
    got = m.DyConv[1](x, om[:, :18], om[:, 18:].sigmoid())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_pooled_coarse_offsets_differ_from_the_flat_quirk_only_in_the_high_branch():
    torch.manual_seed(0)
    flat = DyConv(16, 4).eval()
    pooled = DyConv(16, 4, coarse_offsets="pooled").eval()
    pooled.load_state_dict(flat.state_dict())
    with torch.no_grad():
        flat.offset.weight.normal_(0, 0.05)
        pooled.offset.weight.copy_(flat.offset.weight)
    feats = [torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4), torch.randn(1, 16, 2, 2)]
    out_f, out_p = flat(feats), pooled(feats)
    torch.testing.assert_close(out_f[2], out_p[2])  # the coarsest level has no high branch
    assert not torch.allclose(out_f[0], out_p[0])
    # the pooled high branch by hand: the level-0 offsets and mask averaged over 2x2 cells
    om = pooled.offset(feats[0])
    off, mask = F.avg_pool2d(om[:, :18], 2), F.avg_pool2d(om[:, 18:].sigmoid(), 2)
    high = pooled.DyConv[0](feats[1], off, mask)
    mid = pooled.DyConv[1](feats[0], om[:, :18], om[:, 18:].sigmoid())
    up = F.interpolate(high, size=(8, 8), mode="bilinear", align_corners=True)
    torch.testing.assert_close(out_p[0], pooled.relu(pooled.scale_attention([mid, up])), atol=1e-5, rtol=1e-5)
