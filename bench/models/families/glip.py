"""GLIP (this project's faithful port) as a model family: the presets of glip.config, every regime."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.models.glip_adapter import GLIPAdapter, build_model, check_glip_inputs, model_config
from bench.util.errors import UserError

ALL_REGIMES = ("zero-shot", "linear-probe", "prompt-tuning", "full-ft")


class GLIPFamily:
    """GLIP presets (glip-tiny, glip-synth, glip-t, glip-l...): its config is a GLIPConfig."""

    name = "glip"
    model_types: tuple[str, ...] = ()
    takes_presets = True
    regimes: Mapping[str, tuple[str, ...]] = {"detection": ALL_REGIMES, "grounding": ("zero-shot",)}
    # None: it trains on per-image sampled captions (GLIPAdapter.sampled_training_set), tasks with a train_prompt
    sampled_captions_refusal: str | None = None

    def model_config(self, model: str, overrides: Mapping[str, Any], checkpoint: str | None) -> Any:
        if overrides.get("protocol", "task") != "task":
            raise UserError(f"--model {model}: GLIP's published evaluation is the tasks' protocol (the task files "
                            "follow the official GLIP evaluation); drop protocol=published")
        cfg = model_config(model, {k: v for k, v in overrides.items() if k != "protocol"})
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise UserError(f"checkpoint not found: {checkpoint}")
        return cfg

    def refusal(self, regime: str, task_kind: str) -> str | None:
        return None  # training on grounding tasks is refused for every model by the run spec

    def check_run(self, config: Any, *, regime: str, text_encoder: str | Path | None, infer_batch_size: int,
                  world_size: int) -> None:
        check_glip_inputs(config, text_encoder)

    def build(self, config: Any, checkpoint: str | None, text_encoder: str | Path | None) -> GLIPAdapter:
        return GLIPAdapter(build_model(config, checkpoint, text_encoder))


FAMILIES = (GLIPFamily(),)
