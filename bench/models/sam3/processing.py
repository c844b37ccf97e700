"""SAM 3's pre- and post-processing, done here because transformers' Sam3ImageProcessor imports torchvision.

Every number is the processor's, read from the saved preprocessor_config.json where it is there and
otherwise taken from the class defaults cited below (transformers 5.x):

- transformers/models/sam3/image_processing_sam3.py, class Sam3ImageProcessor: size 1008 x 1008
  (height, width: a square, the aspect is not kept), resample BILINEAR, image_mean / image_std
  IMAGENET_STANDARD_MEAN / _STD (0.5, 0.5, 0.5), do_rescale / do_normalize / do_convert_rgb True, no padding.
- transformers/image_processing_backends.py, TorchvisionBackend.resize: size with height and width ->
  tvF.resize(image, (height, width), BILINEAR, antialias=True) on the uint8 [C, H, W] image;
  TorchvisionBackend.rescale_and_normalize / _fuse_mean_std_and_rescale_factor: mean and std divided by
  rescale_factor (1/255, BaseImageProcessor's default), then (x - mean) / std in float32.
- torchvision/transforms/v2/functional/_geometry.py, resize_image: a uint8 image is interpolated as uint8
  on a CPU whose capability names AVX2 (_do_native_uint8_resize_on_cpu), else cast to float32,
  interpolated (align_corners False, antialias) and rounded back to uint8.
- transformers/models/sam3/processing_sam3.py, Sam3Processor.__call__: text tokenized with
  padding="max_length", max_length=32.
- image_processing_sam3.py, Sam3ImageProcessor.post_process_object_detection: score =
  sigmoid(pred_logits) * sigmoid(presence_logits); pred_boxes are xyxy in [0, 1] and are multiplied by
  (w, h, w, h) of the original image (_scale_boxes); no NMS; then a score threshold (default 0.3), which
  the harness does not apply (AP needs the low-scoring tail: the task's cap keeps the top ones).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.util.errors import UserError

TEXT_LENGTH = 32  # processing_sam3.py, Sam3Processor.__call__: padding="max_length", max_length=32
BILINEAR = 2  # PILImageResampling.BILINEAR, Sam3ImageProcessor.resample
DEFAULTS: dict[str, Any] = {  # Sam3ImageProcessor's class attributes (image_processing_sam3.py)
    "size": {"height": 1008, "width": 1008}, "resample": BILINEAR, "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255, "do_resize": True, "do_rescale": True,
    "do_normalize": True, "do_convert_rgb": True,
}


@dataclass(frozen=True)
class PixelSettings:
    """What decides SAM 3's input pixels."""

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale_factor: float

    @classmethod
    def from_folder(cls, folder: Path) -> PixelSettings:
        """The saved processor's settings (preprocessor_config.json, or processor_config.json's
        image_processor), the class defaults for keys it lacks; a setting this code does not do -> UserError."""
        saved: dict[str, Any] = {}
        for name in ("preprocessor_config.json", "processor_config.json"):
            path = folder / name
            if path.is_file():
                data = json.loads(path.read_text())
                saved = data.get("image_processor", data) if name == "processor_config.json" else data
                break
        cfg = {**DEFAULTS, **{k: v for k, v in saved.items() if k in DEFAULTS}}
        off = [k for k in ("do_resize", "do_rescale", "do_normalize", "do_convert_rgb") if not cfg[k]]
        size = cfg["size"] or {}
        if off or cfg["resample"] != BILINEAR or set(size) != {"height", "width"}:
            raise UserError(f"{folder}: its SAM 3 image processor settings ({ {k: cfg[k] for k in DEFAULTS} }) are "
                            "not the ones this harness reproduces (a bilinear resize to a height x width, rescale, "
                            "normalize, RGB)")
        return cls(int(size["height"]), int(size["width"]), tuple(map(float, cfg["image_mean"])),
                   tuple(map(float, cfg["image_std"])), float(cfg["rescale_factor"]))

    def as_dict(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "image_mean": list(self.mean), "image_std": list(self.std),
                "rescale_factor": self.rescale_factor, "resize": "bilinear antialias, aspect not kept"}


def resize_uint8(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[3, H, W] uint8 -> [3, height, width] uint8, as torchvision's resize_image does on the CPU."""
    if tuple(image.shape[-2:]) == (height, width):
        return image
    native = "AVX2" in torch.backends.cpu.get_cpu_capability()  # torchvision's _do_native_uint8_resize_on_cpu
    x = image[None] if native else image[None].float()
    x = F.interpolate(x, size=[height, width], mode="bilinear", align_corners=False, antialias=True)
    return x[0] if native else x[0].round_().to(torch.uint8)


def pixel_values(images: Sequence[Any], s: PixelSettings) -> torch.Tensor:
    """PIL images -> [B, 3, height, width] float32 model input."""
    out = []
    for image in images:
        rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()  # [3, H, W] uint8
        resized = resize_uint8(rgb, s.height, s.width)
        # the fused rescale + normalize, as _fuse_mean_std_and_rescale_factor writes it
        mean = (torch.tensor(s.mean) * (1.0 / s.rescale_factor)).view(-1, 1, 1)
        std = (torch.tensor(s.std) * (1.0 / s.rescale_factor)).view(-1, 1, 1)
        out.append((resized.to(torch.float32) - mean) / std)
    return torch.stack(out)


def detections(pred_logits: torch.Tensor, pred_boxes: torch.Tensor, presence_logits: torch.Tensor | None,
               height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's outputs ([Q] logits, [Q, 4] xyxy in [0, 1], [1] presence) -> ([Q] scores, [Q, 4] xyxy pixels).

    As post_process_object_detection before its threshold: no clipping, no NMS.
    """
    scores = pred_logits.float().sigmoid()
    if presence_logits is not None:
        scores = scores * presence_logits.float().sigmoid()
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return scores, pred_boxes.float() * scale
