"""transformers' OmDet-Turbo: class queries plus a task prompt; its own post-processing's class-wise NMS."""

from bench.models.hf.families import Family

# Checked: om-ai-lab/OmDet @ 956e2f36a13c32bd1e30b14a790233268c2305fb ships no evaluation script or config for its
# COCO / LVIS / ODinW numbers (README: "evaluated under zero-shot setting"); its inference engine's thresholds
# (omdet/inference/det_engine.py inf_predict: conf 0.5, NMS 0.5) are a demo's, not an AP evaluation's.
WHY_NOT_PUBLISHED = ("no published setting differs from the task protocol: its authors publish no evaluation script "
                     "or settings for their COCO / LVIS / ODinW numbers (om-ai-lab/OmDet@956e2f3: only inference "
                     "demos); run the task protocol")

# transformers' OmDetTurboProcessor post-processing: class-wise NMS at IoU 0.5
FAMILIES = (Family("omdet-turbo", "classes+task", "image", trains=False, grounds=False, nms_iou=0.5,
                   batches=True, published=WHY_NOT_PUBLISHED),)
