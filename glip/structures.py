"""Plain containers passed between the parts of the model and to its users.

Box format is always named: `boxes_xyxy` are absolute pixel corners (x1, y1, x2, y2) in the
official legacy convention, where a box covering pixels x1..x2 has width x2 - x1 + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageBatch:
    """Normalised images padded to a common size.

    tensor: [B, 3, H, W] (BGR x255, mean/std normalised, zero-padded bottom/right to a multiple of 32)
    image_sizes: (h, w) of each image after resizing, before padding
    original_sizes: (h, w) of each image as given (boxes are mapped back to these)
    """

    tensor: torch.Tensor
    image_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]

    def to(self, device: torch.device | str) -> ImageBatch:
        return ImageBatch(self.tensor.to(device), self.image_sizes, self.original_sizes)

    def __len__(self) -> int:
        return self.tensor.shape[0]


@dataclass
class Detections:
    """Detections of one image.

    boxes_xyxy: [N, 4] in original image pixels; scores: [N] in (0, 1];
    labels: [N] phrase index (0-based) into the prompt's phrase list.
    """

    boxes_xyxy: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.scores.shape[0]

    @staticmethod
    def empty() -> Detections:
        return Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))


@dataclass
class TrainTarget:
    """Ground truth of one image for the grounding loss.

    boxes_xyxy: [N, 4] in the resized (model input) image's pixels;
    positive_map: [N, T] binary, which of the T=256 text tokens each box grounds to.
    """

    boxes_xyxy: torch.Tensor
    positive_map: torch.Tensor
