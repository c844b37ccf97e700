"""Pure-torch detection ops (no torchvision): box formats and IoU, NMS, DCNv2."""

from glip.ops.boxes import (
    box_area,
    box_iou,
    clip_boxes,
    clip_boxes_per_image,
    generalized_box_iou,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from glip.ops.dcn import ModulatedDeformConv2d, modulated_deform_conv2d, reinterpret_offset_plane
from glip.ops.nms import batched_nms, nms

__all__ = [
    "ModulatedDeformConv2d",
    "batched_nms",
    "box_area",
    "box_iou",
    "clip_boxes",
    "clip_boxes_per_image",
    "generalized_box_iou",
    "modulated_deform_conv2d",
    "nms",
    "reinterpret_offset_plane",
    "xywh_to_xyxy",
    "xyxy_to_xywh",
]
