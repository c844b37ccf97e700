"""One square anchor per feature-map location, detectron style (official
maskrcnn_benchmark/modeling/rpn/anchor_generator.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def cell_anchor(stride: int, size: float) -> Tensor:
    """The [1, 4] xyxy anchor of the cell at the origin, legacy +1 convention.

    Detectron's generate_anchors with aspect ratio 1 and one scale: base window [0, 0, s-1, s-1]
    (centre (s-1)/2), width round(sqrt(s*s)) * size/s = size, so x1 = c - (size-1)/2 and
    x2 = c + (size-1)/2. Stride 8, size 64 gives [-28, -28, 35, 35].
    """
    base = float(round(float(stride)))  # _ratio_enum: round(sqrt(w*h / 1.0)) for ratio 1
    width = base * (size / stride)  # _scale_enum
    ctr = 0.5 * (stride - 1)  # _whctrs of [0, 0, s-1, s-1]
    half = 0.5 * (width - 1)
    return torch.tensor([[ctr - half, ctr - half, ctr + half, ctr + half]], dtype=torch.float32)


class _BufferList(nn.Module):
    """Buffers named 0..N-1, so state-dict keys read `cell_anchors.N` as in the official model."""

    def __init__(self, buffers: Sequence[Tensor]) -> None:
        super().__init__()
        for i, buf in enumerate(buffers):
            self.register_buffer(str(i), buf)

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self):
        return iter(self._buffers.values())


class AnchorGenerator(nn.Module):
    """Anchors for levels P3..P7: side 8 x stride, grid shifts k * stride, row-major."""

    def __init__(self, strides: Sequence[int] = (8, 16, 32, 64, 128),
                 sizes: Sequence[float] = (64, 128, 256, 512, 1024)) -> None:
        super().__init__()
        if len(strides) != len(sizes):
            raise ValueError(f"need one anchor size per stride, got strides={strides}, sizes={sizes}")
        self.strides = tuple(int(s) for s in strides)
        self.sizes = tuple(float(s) for s in sizes)
        self.cell_anchors = _BufferList([cell_anchor(s, z) for s, z in zip(self.strides, self.sizes)])

    def forward(self, feature_shapes: Sequence[tuple[int, int]]) -> list[Tensor]:
        """[(h_l, w_l)] per level -> [h_l*w_l, 4] xyxy anchors per level (location y*w + x)."""
        if len(feature_shapes) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} feature shapes (one per stride {self.strides}), "
                             f"got {len(feature_shapes)}")
        anchors = []
        for (h, w), stride, cell in zip(feature_shapes, self.strides, self.cell_anchors):
            shift_x = torch.arange(int(w), device=cell.device, dtype=cell.dtype) * stride  # [W]
            shift_y = torch.arange(int(h), device=cell.device, dtype=cell.dtype) * stride  # [H]
            sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")  # [H, W] each
            shifts = torch.stack((sx, sy, sx, sy), dim=-1).reshape(-1, 4)  # [H*W, 4] row-major
            anchors.append(shifts + cell.view(1, 4))
        return anchors


def anchor_mismatches(generator: AnchorGenerator, state: dict[str, Tensor], prefix: str) -> list[str]:
    """The `prefix + "cell_anchors.N"` entries of `state` that differ from the anchors `generator`'s
    strides and sizes give (the model uses the stored buffers, so a different one moves every box)."""
    bad = []
    for i, (stride, size) in enumerate(zip(generator.strides, generator.sizes)):
        key = f"{prefix}cell_anchors.{i}"
        got = state.get(key)
        if got is None or got.is_meta:
            continue
        want = cell_anchor(stride, size)
        if tuple(got.shape) == tuple(want.shape) and not torch.allclose(got.float(), want, atol=1e-4):
            bad.append(f"{key}: {got.reshape(-1).tolist()} but stride {stride}, size {size:g} give "
                       f"{want.reshape(-1).tolist()}")
    return bad
