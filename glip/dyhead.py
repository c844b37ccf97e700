"""DyHead block (official `DyConv`, maskrcnn_benchmark/modeling/rpn/vldyhead.py): scale-aware attention over
three deformable convs that read
the level above, the same level and the level below, then DyReLU (task-aware activation).

Shapes: B images, C channels, H_l x W_l the size of level l (5 levels P3..P7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glip.ops.dcn import ModulatedDeformConv2d


def h_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """ReLU6(x + 3) / 6 (official h_sigmoid, h_max 1)."""
    return F.relu6(x + 3.0) / 6.0


class DyReLU(nn.Module):
    """Dynamic ReLU-B with K=2 and bias (official layers/dyrelu.py, DYReLU(C, C)).

    fc = Linear(C, C/4) -> ReLU -> Linear(C/4, 4C) -> h_sigmoid, split into a1, b1, a2, b2;
    a1 = (a1 - 0.5)*2 + 1, a2 = (a2 - 0.5)*2, b = b - 0.5; out = max(x*a1 + b1, x*a2 + b2).
    """

    LAMBDA_A = 2.0  # official lambda_a=1.0 doubled in __init__
    INIT_A = (1.0, 0.0)
    INIT_B = (0.0, 0.0)

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, 4 * channels))

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x [B,C,H,W] -> a1, b1, a2, b2 each [B,C,1,1]."""
        b, c = x.shape[:2]
        y = h_sigmoid(self.fc(x.mean(dim=(2, 3)))).view(b, 4 * c, 1, 1)  # [B, 4C, 1, 1]
        a1, b1, a2, b2 = torch.split(y, c, dim=1)
        a1 = (a1 - 0.5) * self.LAMBDA_A + self.INIT_A[0]
        a2 = (a2 - 0.5) * self.LAMBDA_A + self.INIT_A[1]
        b1 = b1 - 0.5 + self.INIT_B[0]
        b2 = b2 - 0.5 + self.INIT_B[1]
        return a1, b1, a2, b2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a1, b1, a2, b2 = self.coefficients(x)
        return torch.maximum(x * a1 + b1, x * a2 + b2)


class Conv3x3Norm(nn.Module):
    """DCNv2 3x3 (with bias) + GroupNorm: official Conv3x3Norm(deformable=True, bn_type=('gn', 16))."""

    def __init__(self, channels: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv = ModulatedDeformConv2d(channels, channels, kernel_size=3, stride=stride, padding=1)
        self.bn = nn.GroupNorm(groups, channels)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x, offset, mask))


class DyConv(nn.Module):
    """One DyHead block over all levels.

    DyConv.0 (stride 1) reads level l+1 and is upsampled to level l, DyConv.1 (stride 1) reads level l,
    DyConv.2 (stride 2) reads level l-1. All three use the offsets/mask computed on level l by `offset`
    (27 channels: 18 interleaved (dy, dx) offsets + 9 mask logits); for the coarser level l+1 the level-l
    buffer is reinterpreted flat as the CUDA kernel does (official
    maskrcnn_benchmark/csrc/cuda/deform_conv_kernel_cuda.cu,
    handled inside glip.ops.dcn.ModulatedDeformConv2d).
    """

    def __init__(self, channels: int, groups: int, dyrelu_reduction: int = 4, offset_init: str = "default",
                 coarse_offsets: str = "flat") -> None:
        super().__init__()
        self.coarse_offsets = coarse_offsets  # GLIPConfig.dcn_coarse_offsets
        self.DyConv = nn.ModuleList([Conv3x3Norm(channels, 1, groups), Conv3x3Norm(channels, 1, groups),
                                     Conv3x3Norm(channels, 2, groups)])
        self.AttnConv = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, 1, kernel_size=1),
                                      nn.ReLU(inplace=True))
        self.relu = DyReLU(channels, dyrelu_reduction)
        self.offset = nn.Conv2d(channels, 27, kernel_size=3, stride=1, padding=1)
        nn.init.normal_(self.AttnConv[1].weight, 0, 0.01)  # official DyConv.init_weights
        nn.init.zeros_(self.AttnConv[1].bias)
        # `offset` keeps PyTorch's default Conv2d init: official init_weights only touches AttnConv (and
        # nn.Conv2d members of DyConv, of which there are none with deformable convs)
        if offset_init == "zero":  # GLIPConfig.dcn_offset_init: no offsets, mask 0.5 everywhere at the start
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)

    def scale_attention(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Mean over the available inputs f_k of f_k * h_sigmoid(AttnConv(f_k)) (a mean, not a sum).

        feats: K x [B,C,H,W] (K = 2 or 3) -> [B,C,H,W]
        """
        stacked = torch.stack(feats)  # [K, B, C, H, W]
        attn = h_sigmoid(torch.stack([self.AttnConv(f) for f in feats]))  # [K, B, 1, 1, 1]
        return (stacked * attn).mean(dim=0)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """feats: L x [B,C,H_l,W_l] -> L x [B,C,H_l,W_l]"""
        out = []
        for level, x in enumerate(feats):
            offset_mask = self.offset(x)  # [B, 27, H_l, W_l]
            offset, mask = offset_mask[:, :18], offset_mask[:, 18:].sigmoid()
            temp = [self.DyConv[1](x, offset, mask)]
            if level > 0:
                temp.append(self.DyConv[2](feats[level - 1], offset, mask))
            if level < len(feats) - 1:
                high_offset, high_mask = offset, mask  # "flat": reinterpreted inside the DCN (official)
                if self.coarse_offsets == "pooled":
                    size = feats[level + 1].shape[-2:]
                    high_offset, high_mask = F.adaptive_avg_pool2d(offset, size), F.adaptive_avg_pool2d(mask, size)
                high = self.DyConv[0](feats[level + 1], high_offset, high_mask)
                # official F.upsample_bilinear == interpolate(bilinear, align_corners=True)
                temp.append(F.interpolate(high, size=x.shape[-2:], mode="bilinear", align_corners=True))
            out.append(self.scale_attention(temp))
        return [self.relu(o) for o in out]
