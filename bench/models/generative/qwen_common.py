"""What Qwen2.5-VL and Qwen3-VL share: the JSON answer, the prompt, the chat layout and the input resize.

Answers are JSON objects `{"bbox_2d": [x1, y1, x2, y2], "label": "..."}`, usually in a list inside a
```json fence; each object is read on its own, so one malformed or truncated object costs only itself.
transformers has no box parser for either family.

Inputs: Qwen's combined processor cannot be built here (its video processor needs torchvision), so
the pixels come from the image processor alone (Qwen2VLImageProcessorPil, transformers' PIL backend)
and the text is laid out here: the tokenizer's chat template when it has one, else Qwen's chat layout (the
record's pixel_path says which),
with the image placeholder repeated once per merged patch, and `mm_token_type_ids` marking the image
tokens (without them the model silently falls back to 1-D positions). The image the model sees is
smart_resize'd (both sides multiples of patch_size * merge_size, area within the processor's bounds:
transformers 5.24 models/qwen2_vl/image_processing_qwen2_vl.py lines 63-89); `smart_resize` below is
that arithmetic, and the size used to map boxes back is the processor's own image_grid_thw * patch_size.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bench.models.generative.answers import Parse, Parsed

PROMPTING = "the task's chunk of classes per prompt, one chat turn asking for a JSON list of bbox_2d + label"
WHY_NO_TRAINING = ("its transformers class gives a language-model loss on text only; the harness has no "
                   "detection-to-text training view for it")

_OBJECT = re.compile(r"\{[^{}]*\}")
_LABEL = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"')
_BOX = re.compile(r'"bbox_2d"\s*:\s*\[[^\]]*\]')
IMAGE_PAD, VISION_START, VISION_END = "<|image_pad|>", "<|vision_start|>", "<|vision_end|>"


def detection_prompt(names: Sequence[str]) -> str:
    quoted = ", ".join(json.dumps(n) for n in names)
    return (f"Locate every instance of these categories: {quoted}. Report each one as JSON "
            '{"bbox_2d": [x1, y1, x2, y2], "label": "<category>"}, all of them in one JSON list.')


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) the Qwen-VL image processor resizes to: each a multiple of `factor`, the area in
    [min_pixels, max_pixels], the aspect kept as closely as that allows."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.1f} is over Qwen-VL's 200")
    h, w = round(height / factor) * factor, round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def chat_text(tokenizer: Any, prompt: str, image_tokens: int, system: str | None = None) -> str:
    """The user turn (image, then the prompt) and the assistant's opening, image placeholder expanded.

    The tokenizer's chat template when it has one; else Qwen's layout, opened by the `system` turn the
    family's own template adds when none is given (Qwen2.5-VL: "You are a helpful assistant.")."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
        text += f"<|im_start|>user\n{VISION_START}{IMAGE_PAD}{VISION_END}{prompt}<|im_end|>\n<|im_start|>assistant\n"
    if text.count(IMAGE_PAD) != 1:
        raise ValueError(f"the chat layout holds {text.count(IMAGE_PAD)} image placeholders, not 1")
    return text.replace(IMAGE_PAD, IMAGE_PAD * image_tokens)


def model_inputs(loaded: Any, image: Any, prompt: str) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
    """The model's inputs for one image and prompt, and the (width, height) of the resized image it sees."""
    images = loaded.image_processor
    pixels = images(images=[image], return_tensors="pt")
    t, gh, gw = (int(v) for v in pixels["image_grid_thw"][0])
    merge = int(images.merge_size)
    text = chat_text(loaded.tokenizer, prompt, t * gh * gw // (merge * merge), loaded.family.DEFAULT_SYSTEM)
    enc = loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    image_id = loaded.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
              "mm_token_type_ids": (enc["input_ids"] == image_id).int(),
              "pixel_values": pixels["pixel_values"], "image_grid_thw": pixels["image_grid_thw"]}
    patch = int(images.patch_size)
    return inputs, (gw * patch, gh * patch)


def format_answer(objects: Sequence[tuple[str, Sequence[float]]], to_coords: Callable[[float, float], tuple]) -> str:
    """A fenced JSON list of objects; `to_coords(x, y)` writes a pixel corner in the family's coordinates."""
    rows = []
    for label, (x1, y1, x2, y2) in objects:
        box = [*to_coords(x1, y1), *to_coords(x2, y2)]
        rows.append(json.dumps({"bbox_2d": box, "label": label}))
    return "```json\n[\n\t" + ",\n\t".join(rows) + "\n]\n```"


def parse(text: str, to_pixels: Callable[[float, float], tuple[float, float]]) -> Parse:
    """Every {...} object of the answer that holds "bbox_2d" (four numbers) and "label" (a string);
    `to_pixels(x, y)` maps a corner to original pixels. An object that is not valid JSON, lacks either
    key or has another box shape, or an object left open at the end (truncation), is one unparseable part."""
    result = Parse()
    end = 0
    for m in _OBJECT.finditer(text):
        end = m.end()
        try:
            obj = json.loads(m.group(0))
            box, label = obj["bbox_2d"], obj["label"]
            ok = (isinstance(label, str) and isinstance(box, list) and len(box) == 4
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box))
        except (ValueError, KeyError, TypeError):
            ok = False
        lm, bm = _LABEL.search(m.group(0)), _BOX.search(m.group(0))
        if not ok or lm is None or bm is None:
            result.unparseable += 1
            continue
        x1, y1 = to_pixels(float(box[0]), float(box[1]))
        x2, y2 = to_pixels(float(box[2]), float(box[3]))
        result.objects.append(Parsed(label, (x1, y1, x2, y2), (m.start() + lm.start(1), m.start() + lm.end(1)),
                                     (m.start() + bm.start(), m.start() + bm.end())))
    if "{" in text[end:]:
        result.unparseable += 1  # an object cut off by the token budget
    return result
