"""Closed-set transformers detectors (RT-DETR, RT-DETRv2, D-FINE; `AutoModelForObjectDetection` from hf:DIR):
the fully supervised baseline. They train with full-ft on a task's whole train split (`--shots all`) or its
shots; their classifier is matched to the task's classes by name, or re-sized to them
(bench.models.hf.closed_set). They read no prompt, so nothing that needs one runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench.models.hf.families import HFModelConfig
from bench.util.errors import UserError

NAME = "closed-set"
# model types whose transformers class trains from `labels` and whose post-processing is RT-DETR's (sigmoid
# scores, top (query, class) pairs): one adapter serves them all
MODEL_TYPES = ("rt_detr", "rt_detr_v2", "d_fine")
WHY_NO_PROMPT = ("a closed-set detector cannot read a prompt: its classifier has one output per class it was "
                 "trained on, so it must be trained on the task's classes first (full-ft, e.g. --shots all)")
# tasks that train on per-image sampled captions (train_prompt: OV-LVIS) need an adapter that builds them
WHY_NO_SAMPLED_CAPTIONS = ("it reads no captions, and training its classifier over all of a chunked task's classes "
                           "at once is not wired here (its adapter has no sampled_training_set)")


def refusal(regime: str, task_kind: str) -> str | None:
    """Why a closed-set detector cannot run `regime` on a `task_kind` task, or None."""
    if task_kind == "grounding":
        return f"{NAME} cannot run phrase grounding: {WHY_NO_PROMPT}"
    if regime != "full-ft":
        return f"{NAME} cannot run {regime}: {WHY_NO_PROMPT}"
    return None


@dataclass(frozen=True)
class ClosedSetFamily:
    """The closed-set detectors, one family for the model types sharing RT-DETR's outputs."""

    name: str = NAME
    model_types: tuple[str, ...] = MODEL_TYPES
    takes_presets = False
    sampled_captions_refusal: ClassVar[str | None] = WHY_NO_SAMPLED_CAPTIONS  # bench.runs.spec.train_prompt_refusal

    @property
    def regimes(self) -> Mapping[str, tuple[str, ...]]:
        return {"detection": ("full-ft",), "grounding": ()}

    def model_config(self, model: str, overrides: Mapping[str, Any], checkpoint: str | None) -> HFModelConfig:
        from bench.models.hf.loading import model_dir
        from bench.models.registry import read_model_type

        glip_fields = sorted(k for k in overrides if k != "protocol")
        if glip_fields:
            raise UserError(f"--model {model}: GLIP model fields {glip_fields} do not apply to a transformers "
                            "detector; drop them")
        if overrides.get("protocol", "task") != "task":
            raise UserError(f"--model {model}: {NAME} has no protocol=published: it is trained here, on the task")
        if checkpoint is not None:
            raise UserError(f"--model {model}: the directory holds the initial weights; drop --checkpoint")
        folder = model_dir(model)
        return HFModelConfig(model, folder, str(read_model_type(folder)))

    def refusal(self, regime: str, task_kind: str) -> str | None:
        return refusal(regime, task_kind)

    def check_run(self, config: HFModelConfig, *, regime: str, text_encoder: str | Path | None, infer_batch_size: int,
                  world_size: int) -> None:
        """Any batch size (the processor resizes every image to one size; a padded batch is refused when it
        happens) and any world size."""

    def build(self, config: HFModelConfig, checkpoint: str | None, text_encoder: str | Path | None) -> Any:
        from bench.models.hf.closed_set import load_closed_set

        return load_closed_set(config.name, config.folder)


FAMILIES = (ClosedSetFamily(),)
