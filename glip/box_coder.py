"""Anchor-relative box deltas, the official GLIP BoxCoder (maskrcnn_benchmark/modeling/rpn/vldyhead.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class BoxCoder:
    """encode/decode (dx, dy, dw, dh) against anchors, with the legacy +1 widths.

    Centres are (x1 + x2) / 2, widths x2 - x1 + 1; decode gives x1 = cx - (w - 1)/2 and
    x2 = cx + (w - 1)/2, and clamps dw/weight and dh/weight at log(1000/16) before exp, exactly as
    the official `BoxCoder` in vldyhead.py.
    """

    def __init__(self, weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        if len(weights) != 4:
            raise ValueError(f"BoxCoder needs 4 weights (wx, wy, ww, wh), got {weights}")
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = float(bbox_xform_clip)

    @staticmethod
    def _whc(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        return w, h, (boxes[:, 2] + boxes[:, 0]) / 2, (boxes[:, 3] + boxes[:, 1]) / 2

    def encode(self, gt_xyxy: Tensor, anchors_xyxy: Tensor) -> Tensor:
        """[N, 4] boxes and [N, 4] anchors -> [N, 4] deltas."""
        if gt_xyxy.shape != anchors_xyxy.shape or gt_xyxy.shape[-1:] != (4,):
            raise ValueError(f"encode needs two [N, 4] tensors, got {tuple(gt_xyxy.shape)} and "
                             f"{tuple(anchors_xyxy.shape)}")
        wx, wy, ww, wh = self.weights
        aw, ah, acx, acy = self._whc(anchors_xyxy)
        gw, gh, gcx, gcy = self._whc(gt_xyxy)
        return torch.stack((wx * (gcx - acx) / aw, wy * (gcy - acy) / ah,
                            ww * torch.log(gw / aw), wh * torch.log(gh / ah)), dim=1)

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        """[N, 4] deltas and [N, 4] anchors -> [N, 4] xyxy boxes (differentiable in deltas)."""
        if deltas.shape != anchors.shape or deltas.shape[-1:] != (4,):
            raise ValueError(f"decode needs two [N, 4] tensors, got {tuple(deltas.shape)} and "
                             f"{tuple(anchors.shape)}")
        anchors = anchors.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        aw, ah, acx, acy = self._whc(anchors)
        dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
        dw = torch.clamp(deltas[:, 2] / ww, max=self.bbox_xform_clip)
        dh = torch.clamp(deltas[:, 3] / wh, max=self.bbox_xform_clip)
        cx, cy = dx * aw + acx, dy * ah + acy
        w, h = torch.exp(dw) * aw, torch.exp(dh) * ah
        return torch.stack((cx - 0.5 * (w - 1), cy - 0.5 * (h - 1), cx + 0.5 * (w - 1), cy + 0.5 * (h - 1)), dim=1)
