"""SAM 3 and SAM 3 LiteText (transformers' Sam3Model / Sam3LiteTextModel, loaded with AutoModel from hf:DIR):
zero-shot detection on every detection task, one concept per forward (bench.models.sam3.adapter)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.models.hf.families import HFModelConfig
from bench.util.errors import UserError

WHY_NO_GROUNDING = ("it takes one short concept per forward and finds every instance of it; it does not score the "
                    "phrases of a caption against each other, which phrase grounding needs")
WHY_NO_TRAINING = "transformers' Sam3Model computes no detection loss from labels"


def refusal(name: str, regime: str, task_kind: str) -> str | None:
    if task_kind == "grounding":
        return f"{name} cannot run phrase grounding: {WHY_NO_GROUNDING}"
    if regime != "zero-shot":
        return f"{name} cannot run {regime}: {WHY_NO_TRAINING}; only zero-shot"
    return None


@dataclass(frozen=True)
class Sam3Family:
    """One SAM 3 variant, named as config.json's model_type."""

    name: str
    takes_presets = False

    @property
    def model_types(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def regimes(self) -> Mapping[str, tuple[str, ...]]:
        return {"detection": ("zero-shot",), "grounding": ()}

    def model_config(self, model: str, overrides: Mapping[str, Any], checkpoint: str | None) -> HFModelConfig:
        from bench.models.hf.loading import model_dir

        if overrides:
            raise UserError(f"--model {model}: GLIP model fields {sorted(overrides)} do not apply to {self.name}")
        if checkpoint is not None:
            raise UserError(f"--model {model}: the directory holds the weights; drop --checkpoint")
        return HFModelConfig(model, model_dir(model), self.name)

    def refusal(self, regime: str, task_kind: str) -> str | None:
        return refusal(self.name, regime, task_kind)

    def check_run(self, config: HFModelConfig, *, text_encoder: str | Path | None, infer_batch_size: int,
                  world_size: int) -> None:
        """Any batch size (the images of a batch share the prompts and SAM 3 pads nothing); any world size."""

    def build(self, config: HFModelConfig, checkpoint: str | None, text_encoder: str | Path | None) -> Any:
        from transformers import AutoModel, AutoTokenizer

        from bench.models.sam3.adapter import Loaded, Sam3Adapter
        from bench.models.sam3.processing import PixelSettings

        pieces: dict[str, Any] = {}
        for what, loader in (("model", AutoModel), ("tokenizer", AutoTokenizer)):
            try:
                pieces[what] = loader.from_pretrained(config.folder, local_files_only=True)
            except (OSError, ValueError, ImportError) as e:
                raise UserError(f"--model {config.name}: cannot load its {what} from {config.folder}: {e}") from None
        model = pieces["model"].eval()
        return Sam3Adapter(Loaded(config.folder, model, pieces["tokenizer"], PixelSettings.from_folder(config.folder)),
                           self.name)


FAMILIES = (Sam3Family("sam3"), Sam3Family("sam3_lite_text"))
