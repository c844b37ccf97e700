"""Qwen3-VL: JSON `bbox_2d` boxes in relative coordinates on 0-1000.

Coordinates: [x1, y1, x2, y2], each a fraction of the image's width or height times 1000. The authors
say "relative position coordinates" (QwenLM/Qwen3-VL README at 9658872, its 2D-grounding cookbook row)
and their box conversion for this format writes round(x / w * 1000) clamped to [0, 1000] (QwenLM/Qwen3-VL
qwen-vl-finetune/tools/process_bbox.ipynb, convert_to_qwen2vl_format): so 1000 is the far edge (not 999),
and original pixel = v / 1000 * W (the resize keeps the whole image, so fractions carry over).
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.models.generative import qwen_common
from bench.models.generative.answers import Parse, View

NAME = "qwen3-vl"
MODEL_TYPES = ("qwen3_vl",)
MODEL_CLASS = "Qwen3VLForConditionalGeneration"
USES_PROCESSOR = False
SCALE = 1000
COORDINATES = "JSON bbox_2d [x1, y1, x2, y2] relative on 0-1000 (1000 = far edge); original pixel = v / 1000 * size"
PROMPTING = qwen_common.PROMPTING
PIXEL_PATH = ("transformers Qwen2VLImageProcessorPil (PIL backend, patch 16, merge 2); text, image placeholders and "
              "mm_token_type_ids laid out by bench.models.generative.qwen_common (the Qwen processor needs torchvision)")
CLASSES_PER_PROMPT = None
DEFAULT_SYSTEM = None  # its chat template adds no system turn
GROUNDS = True
TRAINS = None  # no detect-format training view (WHY_NO_TRAINING)
WHY_NO_TRAINING = qwen_common.WHY_NO_TRAINING
detection_prompt = qwen_common.detection_prompt
model_inputs = qwen_common.model_inputs


def format_answer(objects: Sequence[tuple[str, Sequence[float]]], width: int, height: int) -> str:
    """An answer for (label, xyxy original pixels) objects, as round(v / size * 1000) like the authors' converter."""
    return qwen_common.format_answer(objects, lambda x, y: (round(x / width * SCALE), round(y / height * SCALE)))


def parse_answer(text: str, view: View) -> Parse:
    return qwen_common.parse(text, lambda x, y: (x / SCALE * view.width, y / SCALE * view.height))
