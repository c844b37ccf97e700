"""The model seam: what the runner needs from a detector (build, prompts, detect, trainable groups, loss).

`build_adapter` is the one place a model name becomes a model: a small dispatch on the name, with GLIP's
presets (glip.config) as its first family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.models.base import DetectorAdapter, DetectSettings
from bench.models.glip_adapter import GLIPAdapter, build_model, check_glip_inputs, model_config, model_fields

__all__ = ["DetectorAdapter", "DetectSettings", "GLIPAdapter", "build_adapter", "check_model_inputs", "model_config",
           "model_fields"]


def build_adapter(preset_or_name: str, overrides: dict[str, Any] | None = None, checkpoint: str | None = None,
                  text_encoder: str | Path | None = None, device: str = "cpu") -> DetectorAdapter:
    """The adapter of model `preset_or_name` with config `overrides` and weights from `checkpoint`, on `device`."""
    cfg = model_config(preset_or_name, overrides or {})
    return GLIPAdapter(build_model(cfg, checkpoint, text_encoder).to(device))


def check_model_inputs(preset_or_name: str, overrides: dict[str, Any], text_encoder: str | Path | None) -> None:
    """Refuse, before any compute, a model that cannot be built from what the user passed."""
    check_glip_inputs(preset_or_name, overrides, text_encoder)
