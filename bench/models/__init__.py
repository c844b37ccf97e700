"""The model seam: what the runner needs from a detector (build, prompts, detect, trainable groups, loss).

`build_adapter` is the one place a model name becomes a model: a small dispatch on the name, with GLIP's
presets (glip.config) as its first family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.models.base import DetectorAdapter, DetectSettings
from bench.models.generative import build_generative_adapter, check_generative_inputs, family_of
from bench.models.glip_adapter import (
    INIT_SEED,
    GLIPAdapter,
    build_model,
    check_glip_inputs,
    model_config,
    model_fields,
)
from bench.models.hf import build_hf_adapter, check_hf_inputs, is_hf_model
from bench.util.errors import UserError

__all__ = ["DetectorAdapter", "DetectSettings", "GLIPAdapter", "build_adapter", "check_model_config",
           "check_model_inputs", "model_config", "model_fields"]


def build_adapter(preset_or_name: str, overrides: dict[str, Any] | None = None, checkpoint: str | None = None,
                  text_encoder: str | Path | None = None, device: str = "cpu") -> DetectorAdapter:
    """The adapter of model `preset_or_name` with config `overrides` and weights from `checkpoint`, on `device`."""
    if is_hf_model(preset_or_name):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)  # any weight the directory lacks gets the same init in every run
            text_answers = family_of(preset_or_name) is not None  # Florence-2, PaliGemma, ... (bench.models.generative)
            adapter = (build_generative_adapter if text_answers else build_hf_adapter)(preset_or_name)
        adapter.module.to(device)
        return adapter
    cfg = model_config(preset_or_name, overrides or {})
    return GLIPAdapter(build_model(cfg, checkpoint, text_encoder).to(device))


def check_model_config(preset_or_name: str, overrides: dict[str, Any], checkpoint: str | None) -> None:
    """A bad preset, model value or checkpoint fails here, before any data is read."""
    if is_hf_model(preset_or_name):
        if overrides:
            raise UserError(f"--model {preset_or_name}: GLIP model fields {sorted(overrides)} do not apply to a "
                            "transformers detector; drop them")
        if checkpoint is not None:
            raise UserError(f"--model {preset_or_name}: the directory holds the weights; drop --checkpoint")
        return
    model_config(preset_or_name, overrides)
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")


def check_model_inputs(preset_or_name: str, overrides: dict[str, Any], text_encoder: str | Path | None, *,
                       regime: str = "zero-shot", grounding: bool = False, infer_batch_size: int = 1,
                       world_size: int = 1) -> None:
    """Refuse, before any compute, a model that cannot be built from what the user passed, or that cannot
    run this regime / task kind."""
    if is_hf_model(preset_or_name):
        check = check_generative_inputs if family_of(preset_or_name) is not None else check_hf_inputs
        check(preset_or_name, regime, grounding=grounding, infer_batch_size=infer_batch_size,
              world_size=world_size)
        return
    check_glip_inputs(preset_or_name, overrides, text_encoder)
