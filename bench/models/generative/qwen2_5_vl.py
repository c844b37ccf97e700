"""Qwen2.5-VL: JSON `bbox_2d` boxes in absolute pixels of the resized input the model saw.

Coordinates: [x1, y1, x2, y2] in pixels of the smart_resize'd image (sides multiples of 28), as a Qwen
maintainer states (QwenLM/Qwen3-VL issue #676; not in transformers); mapped back to original pixels by
x * W / W' and y * H / H', where (W', H') is the size the image processor resized to.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.models.generative import qwen_common
from bench.models.generative.answers import Parse, View

NAME = "qwen2.5-vl"
MODEL_TYPES = ("qwen2_5_vl",)
MODEL_CLASS = "Qwen2_5_VLForConditionalGeneration"
USES_PROCESSOR = False  # its processor needs torchvision: qwen_common.model_inputs builds the inputs
COORDINATES = ("JSON bbox_2d [x1, y1, x2, y2] in absolute pixels of the smart_resize'd input (W', H'); "
               "original pixel = x * W / W', y * H / H'")
PROMPTING = qwen_common.PROMPTING
PIXEL_PATH = ("transformers Qwen2VLImageProcessorPil (PIL backend); text, image placeholders and mm_token_type_ids "
              "laid out by bench.models.generative.qwen_common (the Qwen processor needs torchvision)")
CLASSES_PER_PROMPT = None
DEFAULT_SYSTEM = "You are a helpful assistant."  # what its chat template adds when no system turn is given
GROUNDS = True
TRAINS = None  # no detect-format training view (WHY_NO_TRAINING)
WHY_NO_TRAINING = qwen_common.WHY_NO_TRAINING
detection_prompt = qwen_common.detection_prompt
model_inputs = qwen_common.model_inputs


def format_answer(objects: Sequence[tuple[str, Sequence[float]]], width: int, height: int) -> str:
    """An answer for (label, xyxy pixels of the input) objects: the pixels rounded, as the model writes them."""
    return qwen_common.format_answer(objects, lambda x, y: (round(x), round(y)))


def parse_answer(text: str, view: View) -> Parse:
    sx = view.width / (view.input_width or view.width)
    sy = view.height / (view.input_height or view.height)
    return qwen_common.parse(text, lambda x, y: (x * sx, y * sy))
