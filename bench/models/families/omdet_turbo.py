"""transformers' OmDet-Turbo: class queries plus a task prompt; its own post-processing's class-wise NMS."""

from bench.models.hf.families import Family

# transformers' OmDetTurboProcessor post-processing: class-wise NMS at IoU 0.5
FAMILIES = (Family("omdet-turbo", "classes+task", "image", trains=False, grounds=False, nms_iou=0.5),)
