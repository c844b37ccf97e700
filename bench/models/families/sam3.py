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

        glip_fields = sorted(k for k in overrides if k != "protocol")
        if glip_fields:
            raise UserError(f"--model {model}: GLIP model fields {glip_fields} do not apply to {self.name}")
        if overrides.get("protocol", "task") != "task":
            raise UserError(f"--model {model}: {self.name} has no protocol=published here: {WHY_NOT_PUBLISHED}")
        if checkpoint is not None:
            raise UserError(f"--model {model}: the directory holds the weights; drop --checkpoint")
        return HFModelConfig(model, model_dir(model), self.name)

    def refusal(self, regime: str, task_kind: str) -> str | None:
        return refusal(self.name, regime, task_kind)

    def check_run(self, config: HFModelConfig, *, regime: str, text_encoder: str | Path | None, infer_batch_size: int,
                  world_size: int) -> None:
        """Any batch size (the images of a batch share the prompts and SAM 3 pads nothing); any world size."""

    def build(self, config: HFModelConfig, checkpoint: str | None, text_encoder: str | Path | None) -> Any:
        from transformers import AutoModel, AutoTokenizer

        from bench.models.hf.loading import load_complete
        from bench.models.sam3.adapter import Loaded, Sam3Adapter
        from bench.models.sam3.processing import PixelSettings

        pieces: dict[str, Any] = {"model": load_complete(config.name, config.folder, AutoModel)}
        for what, loader in (("tokenizer", AutoTokenizer),):
            try:
                pieces[what] = loader.from_pretrained(config.folder, local_files_only=True)
            except (OSError, ValueError, ImportError) as e:
                raise UserError(f"--model {config.name}: cannot load its {what} from {config.folder}: {e}") from None
        model = pieces["model"].eval()
        return Sam3Adapter(Loaded(config.folder, model, pieces["tokenizer"], PixelSettings.from_folder(config.folder)),
                           self.name)


# Checked: facebookresearch/sam3 @ 99d02f28c8d34610ab35559b72642b01f10fdb1e publishes box evaluation configs only for
# ODinW13 and Roboflow-100 (sam3/train/configs/odinw13/odinw_text_only.yaml, roboflow_v100/roboflow_v100_eval.yaml:
# PostProcessImage max_dets_per_img -1, no detection_threshold, presence score on); it has none for LVIS / COCO.
WHY_NOT_PUBLISHED = ("its authors publish no LVIS / COCO box evaluation settings (facebookresearch/sam3@99d02f2 has "
                     "eval configs for ODinW13 and Roboflow-100 only: uncapped detections per image, no score "
                     "threshold, presence score on, which this adapter already scores), so no published setting of "
                     "the reported LVIS / COCO rows differs from the task protocol; run the task protocol")

FAMILIES = (Sam3Family("sam3"), Sam3Family("sam3_lite_text"))
