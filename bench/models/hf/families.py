"""What differs between transformers' zero-shot detectors, as data: text input, box frame, training, grounding.

`Family` is a bench.models.base.ModelFamily whose model is a transformers detector loaded from `hf:DIR`
(config.json's model_type == its name) and run by the shared HFAdapter. The families themselves are
declared in bench/models/families/ (grounding_dino.py, owl.py, omdet_turbo.py).

box_frame says which image the model's normalised boxes are relative to, so they map back to original
pixels: "image" (the resized image keeps the original's frame: x by width, y by height) or "square"
(OWLv2 pads the image to a square at the bottom/right first: both axes by the longer side).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.util.errors import UserError

WHY_NO_GROUNDING = ("its text input is one independent query per class, not a caption whose tokens it scores, so it "
                    "cannot localise a phrase inside a sentence")
WHY_NO_TRAINING = "its transformers class computes no training loss from labels"
# tasks with per-image sampled training captions (train_prompt: OV-LVIS) train only the caption families
# (HFAdapter.sampled_training_set, with bench.models.hf.grounding_loss correcting transformers' loss)
WHY_NO_SAMPLED_CAPTIONS = "its text input is one query per class, not a caption to sample per image"
# transformers/models/grounding_dino/modeling_grounding_dino.py (and mm_grounding_dino's), SPECIAL_TOKENS: the
# loss and the text masks find a caption's phrases between these bert-base-uncased ids
BERT_SPECIAL_IDS = {"[CLS]": 101, "[SEP]": 102, ".": 1012, "?": 1029}


def check_bert_special_tokens(config: HFModelConfig) -> None:
    """Refuse training a caption family whose tokenizer does not put [CLS], [SEP], "." and "?" at
    bert-base-uncased's ids: transformers' loss would fail deep inside (IndexError) or split phrases wrongly."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.folder, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(f"--model {config.name}: cannot load its tokenizer from {config.folder}: {e}") from None
    found = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in BERT_SPECIAL_IDS}
    if found != BERT_SPECIAL_IDS:
        raise UserError(f"--model {config.name}: {config.model_type} cannot be fine-tuned with this tokenizer: "
                        f"transformers' {config.model_type} finds class phrases by bert-base-uncased's token ids "
                        f"{BERT_SPECIAL_IDS}, and this tokenizer has {found}. Zero-shot runs; fine-tune a "
                        "checkpoint with a bert-base-uncased tokenizer")


@dataclass(frozen=True)
class HFModelConfig:
    """An hf:DIR model's config as the run carries it: the name and the checked directory (no weights read)."""

    name: str
    folder: Path
    model_type: str
    protocol: str = "task"  # "published": the family's own evaluation settings (Family.published)


@dataclass(frozen=True)
class Family:
    """One transformers detector family: how it is prompted, where its boxes live, and what it can do."""

    name: str
    text: str  # "caption" (one "a. b." caption, token spans per class) | "queries" (one query per class) | "classes+task"
    box_frame: str  # "image" | "square"
    trains: bool  # the transformers class returns a training loss from `labels`
    grounds: bool  # scores tokens of free text, so it can localise a caption's phrases
    nms_iou: float | None = None  # class-wise NMS of the family's own post-processing
    batches: bool = False  # images of a batch share the prompts and the processor pads none of them
    # protocol=published: settings of the authors' evaluation (detections_per_image, source), or why it is refused
    published: Mapping[str, Any] | str = "no published evaluation protocol is declared for this family"
    takes_presets = False

    @property
    def sampled_captions_refusal(self) -> str | None:
        """Why tasks with per-image sampled training captions refuse its training (bench.runs.spec.
        train_prompt_refusal), or None: a caption family's adapter builds them (HFAdapter.sampled_training_set)."""
        return None if self.text == "caption" else WHY_NO_SAMPLED_CAPTIONS

    @property
    def model_types(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def regimes(self) -> Mapping[str, tuple[str, ...]]:
        return {"detection": ("zero-shot", "full-ft") if self.trains else ("zero-shot",),
                "grounding": ("zero-shot",) if self.grounds else ()}

    def model_config(self, model: str, overrides: Mapping[str, Any], checkpoint: str | None) -> HFModelConfig:
        from bench.models.hf.loading import model_dir

        protocol = overrides.get("protocol", "task")
        glip_fields = sorted(k for k in overrides if k != "protocol")
        if glip_fields:
            raise UserError(f"--model {model}: GLIP model fields {glip_fields} do not apply to a "
                            "transformers detector; drop them")
        if protocol not in ("task", "published"):
            raise UserError(f"--model {model}: protocol={protocol!r}; use task or published")
        if protocol == "published" and isinstance(self.published, str):
            raise UserError(f"--model {model}: {self.name} has no protocol=published here: {self.published}")
        if checkpoint is not None:
            raise UserError(f"--model {model}: the directory holds the weights; drop --checkpoint")
        return HFModelConfig(model, model_dir(model), self.name, protocol)

    def refusal(self, regime: str, task_kind: str) -> str | None:
        """Why this family cannot run `regime` on a `task_kind` task, or None."""
        grounding = task_kind == "grounding"
        if grounding and not self.grounds:
            return f"{self.name} cannot run phrase grounding: {WHY_NO_GROUNDING}"
        if grounding and regime != "zero-shot":
            return f"{self.name} on a grounding task: only zero-shot runs are supported"
        if regime == "zero-shot":
            return None
        if not self.trains:
            return f"{self.name} cannot run {regime}: {WHY_NO_TRAINING}; only zero-shot"
        if regime != "full-ft":
            return (f"{self.name} cannot run {regime}: only full-ft is defined for transformers detectors "
                    "(linear-probe and prompt-tuning name GLIP's own layers)")
        return None

    def check_run(self, config: HFModelConfig, *, regime: str, text_encoder: str | Path | None,
                  infer_batch_size: int, world_size: int) -> None:
        """Batches only where images of a batch share the prompts and no image is padded (not the caption
        families: their processor pads each image to the batch's largest); any world size (sharded)."""
        if infer_batch_size != 1 and not self.batches:
            raise UserError(f"--model {config.name}: infer_batch_size must be 1 for {self.name} (its processor pads "
                            f"the images of a batch to the largest, which moves the numbers); got {infer_batch_size}")
        if regime != "zero-shot" and self.text == "caption":
            check_bert_special_tokens(config)

    def build(self, config: HFModelConfig, checkpoint: str | None, text_encoder: str | Path | None) -> Any:
        from bench.models.hf import build_hf_adapter

        adapter = build_hf_adapter(config.name)
        adapter.set_protocol(config.protocol)
        return adapter
