"""`hf:DIR` -> a transformers zero-shot detector and its pre-processing, loaded offline from a local directory.

DIR is what `save_pretrained` wrote (config.json, weights, tokenizer and processor files). The family is
config.json's model_type; the tokenizer and image processor are loaded on their own (AutoTokenizer,
AutoImageProcessor), because OmDet-Turbo's combined processor needs torchvision, which is unusable here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.models.hf.families import Family
from bench.util.errors import UserError

PREFIX = "hf:"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def is_hf_model(name: str) -> bool:
    return name.startswith(PREFIX)


def model_dir(name: str) -> Path:
    """The directory of an `hf:DIR` model name, checked to hold a saved model (UserError naming what is missing)."""
    folder = Path(name[len(PREFIX):]).expanduser()
    if not folder.is_dir():
        raise UserError(f"--model {name}: no such directory {folder} (save a transformers detector there with "
                        "`model.save_pretrained(DIR)` and `processor.save_pretrained(DIR)`)")
    if not (folder / "config.json").is_file():
        raise UserError(f"--model {name}: {folder} has no config.json; it is not a save_pretrained directory")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise UserError(f"--model {name}: {folder} has no weights ({' or '.join(WEIGHT_FILES)})")
    return folder


def detect_family(folder: Path) -> Family:
    """The family of a saved model from config.json's model_type (unknown -> UserError listing the supported)."""
    from bench.models.registry import family_of_type, read_model_type

    return family_of_type(read_model_type(folder), folder / "config.json")


def check_loadable(folder: Path, family: Family) -> None:
    """Refuse, before loading, a checkpoint whose backbone comes from timm: timm imports torchvision, unusable here.

    The real OmDet-Turbo checkpoints are built that way (a timm Swin); one saved with a transformers
    backbone (use_timm_backbone false) loads and runs.
    """
    config = json.loads((folder / "config.json").read_text())
    backbone = config.get("backbone_config") or {}
    if config.get("use_timm_backbone") or backbone.get("model_type") == "timm_backbone":
        try:
            import timm  # noqa: F401
        except ImportError:
            raise UserError(f"{folder}: this {family.name} checkpoint's backbone is a timm model "
                            f"({config.get('backbone') or backbone.get('backbone') or 'timm'}); timm needs torchvision, "
                            "which is unusable in this environment, so it cannot be loaded here") from None


def check_crop(name: str, image_processor: Any) -> None:
    """Refuse a processor that center-crops after resizing: boxes in the crop do not map back to the whole image."""
    if not getattr(image_processor, "do_center_crop", False):
        return
    size, crop = dict(image_processor.size or {}), dict(image_processor.crop_size or {})
    exact = (size.get("height"), size.get("width"))
    if None not in exact and exact == (crop.get("height"), crop.get("width")):
        return  # resized to exactly the crop: the crop keeps the whole image
    raise UserError(f"--model {name}: its image processor resizes to {size} and then center-crops to {crop}, so "
                    "boxes would miss the cropped-off border; save it with do_center_crop=False or a crop equal "
                    "to the resize")


def weights_file(folder: Path) -> Path:
    return next(folder / f for f in WEIGHT_FILES if (folder / f).is_file())


def load_complete(name: str, folder: Path, loader: Any) -> Any:
    """The model, refused unless its weights match its config: transformers would initialise a missing or
    mis-shaped weight at random and only log it (a random detector that records AP 0). A .bin is read by
    torch's weights-only unpickler (transformers' default), so a pickle payload is refused, never run."""
    try:
        model, info = loader.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except Exception as e:  # truncated safetensors (SafetensorError), pickle payload (UnpicklingError), OSError
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"--model {name}: cannot load its weights from {weights_file(folder)} "
                        f"({type(e).__name__}: {first}); save the model again with save_pretrained") from None
    missing = sorted(info["missing_keys"]) + sorted(str(k[0] if isinstance(k, tuple) else k)
                                                   for k in info.get("mismatched_keys", ()))
    unexpected = sorted(info["unexpected_keys"])
    if missing or unexpected:
        raise UserError(f"--model {name}: the weights in {weights_file(folder)} do not match its config.json: "
                        f"{len(missing)} weights missing or of the wrong shape (e.g. {missing[:3]}), "
                        f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); it would run with random weights. "
                        "Save the model and its config together with save_pretrained")
    return model


@dataclass
class Loaded:
    """A loaded detector: the torch model, its tokenizer and image processor."""

    family: Family
    folder: Path
    model: Any
    tokenizer: Any
    image_processor: Any


def load(name: str) -> Loaded:
    """Load `hf:DIR` with local files only (no network); errors name the directory and the missing piece."""
    from transformers import AutoImageProcessor, AutoModelForZeroShotObjectDetection, AutoTokenizer

    folder = model_dir(name)
    family = detect_family(folder)
    check_loadable(folder, family)
    pieces: dict[str, Any] = {"model": load_complete(name, folder, AutoModelForZeroShotObjectDetection)}
    for what, loader in (("tokenizer", AutoTokenizer), ("image processor", AutoImageProcessor)):
        try:
            pieces[what] = loader.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, ImportError) as e:
            raise UserError(f"--model {name}: cannot load its {what} from {folder}: {e}") from None
    pieces["model"].eval()
    check_crop(name, pieces["image processor"])
    return Loaded(family, folder, pieces["model"], pieces["tokenizer"], pieces["image processor"])
