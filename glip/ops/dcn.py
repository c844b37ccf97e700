"""Modulated deformable convolution (DCNv2) in pure torch: one grid_sample + one matmul.

The official DyHead uses the compiled `ModulatedDeformConv` of maskrcnn_benchmark (CUDA only,
official maskrcnn_benchmark/csrc/cuda/deform_conv_cuda.cu). This module computes the same function: for every
output pixel and kernel tap
k, sample the input bilinearly at (y0 + i_k*dilation + dy_k, x0 + j_k*dilation + dx_k), zero outside
the image, multiply by the tap's mask and sum with the weights. Offsets are interleaved (dy, dx)
per tap (channel 2k = dy, 2k+1 = dx), as in the official kernel and torchvision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - (dilation * (kernel - 1) + 1)) // stride + 1


def modulated_deform_conv2d(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
) -> Tensor:
    """DCNv2 with groups = deformable_groups = 1.

    x [B, Cin, H, W], offset [B, 2K, Ho, Wo], mask [B, K, Ho, Wo] (K = kh*kw taps, row-major),
    weight [Cout, Cin, kh, kw], bias [Cout] or None -> [B, Cout, Ho, Wo]. Differentiable in all inputs.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be [B, Cin, H, W], got {tuple(x.shape)}")
    b, cin, h, w = x.shape
    cout, cin_w, kh, kw = weight.shape
    if cin_w != cin:
        raise ValueError(f"weight expects {cin_w} input channels, x has {cin}")
    k = kh * kw
    ho = _out_size(h, kh, stride, padding, dilation)
    wo = _out_size(w, kw, stride, padding, dilation)
    if offset.shape != (b, 2 * k, ho, wo):
        raise ValueError(f"offset must be {(b, 2 * k, ho, wo)}, got {tuple(offset.shape)}")
    if mask.shape != (b, k, ho, wo):
        raise ValueError(f"mask must be {(b, k, ho, wo)}, got {tuple(mask.shape)}")

    dev, dt = x.device, x.dtype
    tap_y = (torch.arange(kh, device=dev, dtype=dt) * dilation).repeat_interleave(kw)  # [K] row of tap k
    tap_x = (torch.arange(kw, device=dev, dtype=dt) * dilation).repeat(kh)  # [K] column of tap k
    out_y = torch.arange(ho, device=dev, dtype=dt) * stride - padding  # [Ho]
    out_x = torch.arange(wo, device=dev, dtype=dt) * stride - padding  # [Wo]
    # sampling positions in input pixels, [B, K, Ho, Wo]
    py = out_y[None, None, :, None] + tap_y[None, :, None, None] + offset[:, 0::2]
    px = out_x[None, None, None, :] + tap_x[None, :, None, None] + offset[:, 1::2]
    # grid_sample(align_corners=False) puts pixel i at (2i + 1) / size - 1; valid for any size >= 1
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)  # [B, K, Ho, Wo, 2]
    grid = grid.reshape(b, k * ho, wo, 2)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # [B, Cin, K*Ho, Wo] -> modulate -> columns [B, Cin*K, Ho*Wo] (Cin-major, like weight.view(Cout, -1))
    sampled = sampled.view(b, cin, k, ho, wo) * mask[:, None]
    cols = sampled.reshape(b, cin * k, ho * wo)
    out = torch.matmul(weight.reshape(cout, cin * k), cols)  # [B, Cout, Ho*Wo]
    if bias is not None:
        out = out + bias[None, :, None]
    return out.view(b, cout, ho, wo)


def reinterpret_offset_plane(t: Tensor, out_h: int, out_w: int) -> Tensor:
    """[B, K, H, W] -> [B, K, out_h, out_w]: the official flat reuse of a larger offset/mask buffer.

    official maskrcnn_benchmark/csrc/cuda/deform_conv_kernel_cuda.cu (the im2col kernel): it indexes the
    level-l offset
    buffer with the (smaller) output size, so it reads the first K*out_h*out_w values of each
    image's plane, i.e. t[b].reshape(-1)[:K*out_h*out_w].view(K, out_h, out_w). Identity when the
    shapes already match.
    """
    if t.dim() != 4:
        raise ValueError(f"expected [B, K, H, W], got {tuple(t.shape)}")
    b, k, h, w = t.shape
    if (h, w) == (out_h, out_w):
        return t
    need = k * out_h * out_w
    if need > k * h * w:
        raise ValueError(
            f"offset/mask plane {tuple(t.shape)} is smaller than the output {(out_h, out_w)}: "
            "the official kernel would read past the buffer"
        )
    return t.reshape(b, k * h * w)[:, :need].reshape(b, k, out_h, out_w)


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer with the official parameter names (`weight`, `bias`) and initialisation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official ModulatedDeformConv.reset_parameters: U(+-1/sqrt(fan_in)), zero bias."""
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
        nn.init.uniform_(self.weight, -stdv, stdv)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        """x [B, Cin, H, W], offset [B, 2K, h, w], mask [B, K, h, w] -> [B, Cout, Ho, Wo].

        When offset/mask come from a finer level than the output (the DyHead "high" branch), they
        are reinterpreted as the official kernel does (csrc/cuda/deform_conv_kernel_cuda.cu).
        """
        ho = _out_size(x.shape[-2], self.kernel_size, self.stride, self.padding, self.dilation)
        wo = _out_size(x.shape[-1], self.kernel_size, self.stride, self.padding, self.dilation)
        offset = reinterpret_offset_plane(offset, ho, wo)
        mask = reinterpret_offset_plane(mask, ho, wo)
        weight, bias = self.weight, self.bias
        if torch.is_autocast_enabled(x.device.type):
            # the official op is decorated custom_fwd(cast_inputs=torch.float32): always fp32
            with torch.autocast(device_type=x.device.type, enabled=False):
                return modulated_deform_conv2d(
                    x.float(), offset.float(), mask.float(), weight.float(),
                    None if bias is None else bias.float(), self.stride, self.padding, self.dilation,
                )
        return modulated_deform_conv2d(x, offset, mask, weight, bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}")
