"""`hf:DIR` of a text-answering model -> its family module, model and processor pieces, loaded offline.

The family is config.json's model_type (bench.models.generative.FAMILIES). Florence-2, PaliGemma and
Kosmos-2 load their transformers processor (its PIL image backend: torchvision is unusable here);
Qwen-VL's processor cannot be built without torchvision (its video processor), so the Qwen families
load the tokenizer and the image processor on their own and build the prompt themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.util.errors import UserError


@dataclass
class Loaded:
    """A loaded text-answering model: its family module, folder, model, tokenizer, image processor and
    (where it loads) the combined processor."""

    family: ModuleType
    folder: Path
    model: Any
    tokenizer: Any
    image_processor: Any
    processor: Any | None


def model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as e:
        raise UserError(f"{folder / 'config.json'}: unreadable ({e})") from None


def load(name: str, family: ModuleType) -> Loaded:
    """Load `hf:DIR` with local files only; errors name the directory and the piece that failed."""
    import transformers

    from bench.models.hf.loading import check_crop, model_dir

    folder = model_dir(name)
    model_class = getattr(transformers, family.MODEL_CLASS)
    try:
        model = model_class.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, ImportError) as e:
        raise UserError(f"--model {name}: cannot load its {family.NAME} model from {folder}: {e}") from None
    model.eval()
    processor = None
    try:
        if getattr(family, "USES_PROCESSOR", True):
            processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
            tokenizer, images = processor.tokenizer, processor.image_processor
        else:
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            images = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, ImportError, AttributeError) as e:
        raise UserError(f"--model {name}: cannot load its tokenizer / image processor from {folder}: {e}") from None
    check_crop(name, images)
    return Loaded(family, folder, model, tokenizer, images, processor)
