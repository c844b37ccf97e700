"""The dense head's raw outputs, shared by the head, the loss and the post-processor."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class HeadOutputs:
    """Per-level predictions of the head (levels P3..P7, locations row-major, one anchor each).

    logits: [B, H_l*W_l, T] dot-product token logits per level
    bbox_reg: [B, H_l*W_l, 4] box deltas (BoxCoder convention) per level
    centerness: [B, H_l*W_l] centerness logits per level
    """

    logits: list[Tensor]
    bbox_reg: list[Tensor]
    centerness: list[Tensor]

    def __post_init__(self) -> None:
        n = len(self.logits)
        if len(self.bbox_reg) != n or len(self.centerness) != n:
            raise ValueError(
                f"HeadOutputs needs one tensor per level in each field, got {n} logits, "
                f"{len(self.bbox_reg)} bbox_reg, {len(self.centerness)} centerness"
            )

    @property
    def num_levels(self) -> int:
        return len(self.logits)
