"""`GenerativeFamily`: one text-answering family module (florence2.py, ...) as a bench.models.base.ModelFamily.

What the registry asks of a family, read from the module's declarations: its config.json model_types,
its regimes per task kind (zero-shot detection for all, full-ft where TRAINS names a loss; zero-shot
grounding where GROUNDS), why it refuses the rest (WHY_NO_TRAINING, WHY_NO_GROUNDING), the settings it
cannot run with, and its adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.models.hf.families import HFModelConfig
from bench.util.errors import UserError


@dataclass(frozen=True)
class GenerativeFamily:
    """A family whose model answers detection prompts in text; `module` declares it."""

    module: ModuleType
    takes_presets = False

    @property
    def name(self) -> str:
        return self.module.NAME

    @property
    def model_types(self) -> tuple[str, ...]:
        return tuple(self.module.MODEL_TYPES)

    @property
    def regimes(self) -> Mapping[str, tuple[str, ...]]:
        detection = ("zero-shot", "full-ft") if self.module.TRAINS is not None else ("zero-shot",)
        return {"detection": detection, "grounding": ("zero-shot",) if self.module.GROUNDS else ()}

    def model_config(self, model: str, overrides: Mapping[str, Any], checkpoint: str | None) -> HFModelConfig:
        from bench.models.hf.loading import model_dir

        if overrides:
            raise UserError(f"--model {model}: GLIP model fields {sorted(overrides)} do not apply to a "
                            "transformers model; drop them")
        if checkpoint is not None:
            raise UserError(f"--model {model}: the directory holds the weights; drop --checkpoint")
        return HFModelConfig(model, model_dir(model), self.model_types[0])

    def refusal(self, regime: str, task_kind: str) -> str | None:
        from bench.models.generative.adapter import refusal

        return refusal(self.module, regime, grounding=task_kind == "grounding")

    def check_run(self, config: HFModelConfig, *, text_encoder: str | Path | None, infer_batch_size: int,
                  world_size: int) -> None:
        if infer_batch_size != 1:
            raise UserError(f"--model {config.name}: infer_batch_size must be 1 (one image and prompt per "
                            f"generation); got {infer_batch_size}")
        if world_size > 1:
            raise UserError(f"--model {config.name}: text-answering models run in one process, not under torchrun")

    def build(self, config: HFModelConfig, checkpoint: str | None, text_encoder: str | Path | None) -> Any:
        from bench.models.generative.adapter import GenerativeAdapter
        from bench.models.generative.loading import load

        return GenerativeAdapter(load(config.name, self.module))
