"""DCNv2 against conv2d, a brute-force bilinear reference, gradcheck, and the official offset quirk."""

import math

import pytest
import torch
import torch.nn.functional as F

from glip.ops.dcn import ModulatedDeformConv2d, modulated_deform_conv2d, reinterpret_offset_plane


def _bilinear(img, y, x):
    """Official dmcn_im2col_bilinear: zero outside (-1, H) x (-1, W), per-corner bounds checks."""
    c, h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return torch.zeros(c, dtype=img.dtype)
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    out = torch.zeros(c, dtype=img.dtype)
    for yy, xx, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                       (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yy < h and 0 <= xx < w:
            out += wt * img[:, yy, xx]
    return out


def _reference(x, offset, mask, weight, bias, stride, padding, dilation):
    b, c, _, _ = x.shape
    cout, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    out = torch.zeros(b, cout, ho, wo, dtype=x.dtype)
    for n in range(b):
        for oy in range(ho):
            for ox in range(wo):
                col = torch.zeros(c, kh * kw, dtype=x.dtype)
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        y = oy * stride - padding + i * dilation + offset[n, 2 * k, oy, ox].item()
                        xx = ox * stride - padding + j * dilation + offset[n, 2 * k + 1, oy, ox].item()
                        col[:, k] = _bilinear(x[n], y, xx) * mask[n, k, oy, ox]
                out[n, :, oy, ox] = weight.reshape(cout, -1) @ col.reshape(-1) + bias
    return out


def _out(size, stride, padding, dilation, k=3):
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 1)])
def test_zero_offset_full_mask_equals_conv2d(stride, padding, dilation):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 11, 9, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 5, 3, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(4, generator=gen, dtype=torch.float64)
    ho, wo = _out(11, stride, padding, dilation), _out(9, stride, padding, dilation)
    offset = torch.zeros(2, 18, ho, wo, dtype=torch.float64)
    mask = torch.ones(2, 9, ho, wo, dtype=torch.float64)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation)
    want = F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("stride,padding,dilation,size", [(1, 1, 1, (5, 6)), (2, 1, 1, (7, 6)), (1, 2, 2, (4, 5))])
def test_random_offsets_match_brute_force_bilinear(stride, padding, dilation, size):
    gen = torch.Generator().manual_seed(1)
    h, w = size
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(4, generator=gen, dtype=torch.float64)
    ho, wo = _out(h, stride, padding, dilation), _out(w, stride, padding, dilation)
    offset = torch.randn(2, 18, ho, wo, generator=gen, dtype=torch.float64) * 2  # some samples leave the image
    mask = torch.rand(2, 9, ho, wo, generator=gen, dtype=torch.float64)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation)
    want = _reference(x, offset, mask, weight, bias, stride, padding, dilation)
    torch.testing.assert_close(got, want)


def test_gradcheck_double():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    offset = (torch.rand(1, 18, 3, 4, generator=gen, dtype=torch.float64) * 3 - 1.5).requires_grad_()
    mask = torch.rand(1, 9, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: modulated_deform_conv2d(*a, stride=1, padding=1, dilation=1),
        (x, offset, mask, weight, bias), eps=1e-6, atol=1e-5,
    )


def test_reinterpret_offset_plane_formula():
    gen = torch.Generator().manual_seed(4)
    t = torch.randn(3, 18, 8, 10, generator=gen)
    got = reinterpret_offset_plane(t, 4, 5)
    for b in range(3):  # the contract's formula, image by image
        torch.testing.assert_close(got[b], t[b].reshape(-1)[: 18 * 4 * 5].view(18, 4, 5))
    assert reinterpret_offset_plane(t, 8, 10) is t
    # a non-contiguous channel slice (the official offset = offset_mask[:, :18]) reads the same values
    om = torch.randn(2, 27, 6, 6, generator=gen)
    sliced = reinterpret_offset_plane(om[:, :18], 3, 3)
    torch.testing.assert_close(sliced, om[:, :18].contiguous().reshape(2, -1)[:, : 18 * 9].view(2, 18, 3, 3))
    with pytest.raises(ValueError, match="smaller than the output"):
        reinterpret_offset_plane(t, 16, 20)


def test_module_half_size_branch_uses_flat_reinterpretation():
    """DyHead 'high' branch: stride-1 conv on level l+1 (half size) with level-l offsets."""
    gen = torch.Generator().manual_seed(5)
    conv = ModulatedDeformConv2d(4, 6, stride=1).double()
    x_coarse = torch.randn(2, 4, 4, 5, generator=gen, dtype=torch.float64)  # output 4x5
    offset = torch.randn(2, 18, 8, 10, generator=gen, dtype=torch.float64)  # level-l plane 8x10
    mask = torch.rand(2, 9, 8, 10, generator=gen, dtype=torch.float64)
    got = conv(x_coarse, offset, mask)
    flat_off = torch.stack([offset[b].reshape(-1)[: 18 * 20].view(18, 4, 5) for b in range(2)])
    flat_mask = torch.stack([mask[b].reshape(-1)[: 9 * 20].view(9, 4, 5) for b in range(2)])
    want = _reference(x_coarse, flat_off, flat_mask, conv.weight.detach(), conv.bias.detach(), 1, 1, 1)
    torch.testing.assert_close(got, want)
    # 'low' branch: stride-2 conv on level l-1 (double size): output matches the plane, used as is
    down = ModulatedDeformConv2d(4, 6, stride=2).double()
    x_fine = torch.randn(2, 4, 16, 20, generator=gen, dtype=torch.float64)
    got = down(x_fine, offset, mask)
    want = modulated_deform_conv2d(x_fine, offset, mask, down.weight, down.bias, stride=2)
    assert got.shape == (2, 6, 8, 10)
    torch.testing.assert_close(got, want)


def test_module_init_names_and_errors():
    conv = ModulatedDeformConv2d(8, 4)
    assert set(dict(conv.named_parameters())) == {"weight", "bias"}
    assert conv.weight.abs().max() <= 1 / math.sqrt(8 * 9) and bool((conv.bias == 0).all())
    with pytest.raises(ValueError, match="offset"):
        modulated_deform_conv2d(torch.zeros(1, 8, 4, 4), torch.zeros(1, 16, 4, 4), torch.ones(1, 9, 4, 4),
                                conv.weight)


def test_autocast_runs_in_float32():
    conv = ModulatedDeformConv2d(2, 3)
    x, off, m = torch.randn(1, 2, 5, 5), torch.randn(1, 18, 5, 5), torch.rand(1, 9, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x, off, m)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, conv(x, off, m))
