"""glip: a faithful, readable GLIP (Swin + FPN + DyHead with deep fusion + BERT) in modern PyTorch.

    import glip
    model = glip.from_pretrained("glip-t", checkpoint="glip_tiny_model_o365_goldg.pth",
                                 text_encoder="path/to/bert-base-uncased")
    dets = model.predict(image, ["cat", "dog"])      # Detections: boxes_xyxy, scores, labels
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glip.config import PRESETS, GLIPConfig, get_preset, register_preset

if TYPE_CHECKING:
    from glip.model import GLIP
    from glip.structures import Detections, ImageBatch, TrainTarget

__all__ = ["GLIP", "PRESETS", "Detections", "GLIPConfig", "ImageBatch", "TrainTarget", "from_pretrained",
           "get_preset", "register_preset"]


def __getattr__(name: str) -> Any:
    # imported on first use, so that `import glip.config` (a preset lookup) loads neither torch nor
    # transformers, and `import glip.ops...` not transformers
    if name == "GLIP":
        from glip.model import GLIP

        return GLIP
    if name in ("Detections", "ImageBatch", "TrainTarget"):
        from glip import structures

        return getattr(structures, name)
    raise AttributeError(f"module 'glip' has no attribute {name!r}")


def from_pretrained(preset: str | GLIPConfig, checkpoint: str | Path | None = None,
                    text_encoder: str | Path | None = None, tokenizer: Any = None, ema: bool = False,
                    **overrides: Any) -> GLIP:
    """Build a GLIP and load its weights.

    preset: a preset name (or a GLIPConfig); overrides: GLIPConfig fields to change.
    checkpoint: an official GLIP .pth (maskrcnn_benchmark layout, converted on the fly; `ema` picks its
        `model_ema` entry) or a .safetensors file saved by this package; None = random weights.
    text_encoder: a local bert-base-uncased directory (BERT weights + tokenizer); needed by the presets that
        use bert-base-uncased unless `tokenizer` is given (an official checkpoint carries BERT's weights but
        not its vocabulary).
    tokenizer: a tokenizer object or a directory to load one from (overrides the text encoder's).
    """
    from glip.checkpoint import (
        convert_official,
        load_official_file,
        load_weights,
        read_weights,
        strip_module_prefix,
    )
    from glip.language import LanguageBackbone, load_tokenizer
    from glip.model import GLIP

    cfg = replace(preset, **overrides) if isinstance(preset, GLIPConfig) else get_preset(preset, **overrides)
    official = None
    if checkpoint is not None and Path(checkpoint).suffix != ".safetensors":
        official = strip_module_prefix(load_official_file(checkpoint, ema=ema))
        cls = official.get("rpn.head.cls_logits.weight")
        if cls is not None and cls.shape[0] != cfg.num_legacy_classes and "num_legacy_classes" not in overrides:
            # only the (unused) channel count of cls_logits differs between releases (the official
            # loader skips mis-shaped keys: maskrcnn_benchmark/utils/model_serialization.py)
            cfg = replace(cfg, num_legacy_classes=int(cls.shape[0]))
    elif checkpoint is not None:
        _, meta = read_weights(checkpoint)
        saved = json.loads(meta.get("config", "{}")).get("num_legacy_classes")
        if saved is not None and saved != cfg.num_legacy_classes and "num_legacy_classes" not in overrides:
            cfg = replace(cfg, num_legacy_classes=int(saved))

    if isinstance(tokenizer, str | Path):
        tokenizer = load_tokenizer(tokenizer)
    language = None
    if text_encoder is not None:
        language = LanguageBackbone.from_pretrained(text_encoder, max_len=cfg.max_query_len)
        got = (language.model.config.hidden_size, language.model.config.num_hidden_layers,
               language.model.config.vocab_size)
        want = (cfg.text_hidden, cfg.text_layers, cfg.text_vocab_size)
        if got != want:
            raise ValueError(f"text encoder {text_encoder} has (hidden, layers, vocab) {got}, preset "
                             f"{cfg.name!r} needs {want}")
        tokenizer = tokenizer or language.tokenizer
    if tokenizer is None and cfg.vocab_words is None:
        raise ValueError(f"preset {cfg.name!r} uses the bert-base-uncased vocabulary: pass text_encoder=<local "
                         "bert-base-uncased dir> (or tokenizer=<dir or tokenizer object>)")
    model = GLIP(cfg, tokenizer=tokenizer, language=language)
    if official is not None:
        state, _ = convert_official(official, model)
        model.load_state_dict(state, strict=True)
    elif checkpoint is not None:
        load_weights(model, checkpoint)
    return model.eval()
