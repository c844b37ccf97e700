"""A small convolutional body with Swin's output contract, for GLIP models trained from scratch.

Swin learns shape slowly from a few thousand images: a linear probe at object centres on its stride-8
features reached 25% on the synthetic world's 8 shapes after 300 steps, this body 95% (README "The
synthetic world"). It returns C3..C5 (strides 8, 16, 32; channels 2C, 4C, 8C for C = swin_embed_dim)
as transformers' BackboneOutput, so the FPN and everything after it are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import BackboneOutput


def conv_gn_relu(c_in: int, c_out: int, stride: int, groups: int = 8) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.GroupNorm(groups, c_out),
                         nn.ReLU(inplace=True))


class ConvBody(nn.Module):
    """Images [B,3,H,W] -> BackboneOutput(feature_maps=(C3, C4, C5)), each stage two 3x3 convs."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_gn_relu(3, w, 2), conv_gn_relu(w, w, 1),  # stride 4
                                  conv_gn_relu(w, w, 2), conv_gn_relu(w, w, 1))
        self.stage2 = nn.Sequential(conv_gn_relu(w, 2 * w, 2), conv_gn_relu(2 * w, 2 * w, 1))  # stride 8
        self.stage3 = nn.Sequential(conv_gn_relu(2 * w, 4 * w, 2), conv_gn_relu(4 * w, 4 * w, 1))  # 16
        self.stage4 = nn.Sequential(conv_gn_relu(4 * w, 8 * w, 2), conv_gn_relu(8 * w, 8 * w, 1))  # 32

    def forward(self, images: torch.Tensor) -> BackboneOutput:
        c3 = self.stage2(self.stem(images))
        c4 = self.stage3(c3)
        c5 = self.stage4(c4)
        return BackboneOutput(feature_maps=(c3, c4, c5))
