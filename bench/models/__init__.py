"""The model seam: what the runner needs from a detector (build, prompts, detect, trainable groups, loss).

A model name resolves to its family (bench.models.registry: one module per family in bench/models/families/)
and its config, once per spec (`resolve_model`); `build_adapter` turns that into a DetectorAdapter
(bench.models.base). Nothing here branches on the family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.models.base import DetectorAdapter, DetectSettings, ModelFamily, ModelTimer
from bench.models.glip_adapter import GLIPAdapter, model_config, model_fields
from bench.models.registry import ResolvedModel, all_families, resolve_model

__all__ = ["DetectorAdapter", "DetectSettings", "GLIPAdapter", "ModelFamily", "ModelTimer", "ResolvedModel",
           "all_families", "build_adapter", "model_config", "model_fields", "resolve_model"]


def build_adapter(preset_or_name: str, overrides: dict[str, Any] | None = None, checkpoint: str | None = None,
                  text_encoder: str | Path | None = None, device: str = "cpu", *,
                  resolved: ResolvedModel | None = None) -> DetectorAdapter:
    """The adapter of model `preset_or_name` with config `overrides` and weights from `checkpoint`, on `device`.

    resolved: the model as the run resolved it (its config is not built again).
    """
    model = resolved if resolved is not None else resolve_model(preset_or_name, overrides, checkpoint)
    return model.build(text_encoder, device)
