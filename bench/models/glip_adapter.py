"""GLIP behind the DetectorAdapter seam: configs from presets, weights, prompts, and the cached chunk engine.

The engine (bench.models.glip) does the predicting; this class only maps the harness's settings
(DetectSettings, docs/formats.md "Predictions") onto its arguments, so the runner never calls glip directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import glip
from bench.data.od_captions import CaptionSampler, TrainPrompt
from bench.data.prompt_anchor import ClassAnchor
from bench.data.training import DetectionTrainSet, SampledCaptionTrainSet, TrainInput
from bench.models import glip as engine
from bench.models.base import INIT_SEED, MODEL_SETTINGS, DetectSettings
from bench.tasks.prompts import task_prompt_chunks
from bench.util.errors import UserError
from glip.config import GLIPConfig, get_preset


def model_fields() -> set[str]:
    """GLIPConfig fields a run may override (`--set fusion=late`), and the model settings of every family
    (`--set protocol=published`, bench.models.base.MODEL_SETTINGS)."""
    return ({f.name for f in dataclasses.fields(GLIPConfig)} - {"name"}) | set(MODEL_SETTINGS)


def model_config(preset: str, model_overrides: Mapping[str, Any]) -> GLIPConfig:
    """The GLIPConfig of a preset with overrides (lists become tuples); bad name or value -> UserError."""
    fields = model_fields() - set(MODEL_SETTINGS)  # the GLIPConfig fields
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in model_overrides.items() if k in fields}
    try:
        return get_preset(preset, **fixed)
    except KeyError as e:
        raise UserError(str(e).strip("'\"")) from None
    except (TypeError, ValueError) as e:
        raise UserError(f"model {preset} with overrides {dict(model_overrides)}: {e}") from None


def check_glip_inputs(cfg: GLIPConfig, text_encoder: str | Path | None) -> None:
    """A preset without a built-in vocabulary needs a local bert-base-uncased directory."""
    if cfg.vocab_words is None and text_encoder is None:
        raise UserError(f"model {cfg.name} uses bert-base-uncased: pass --text-encoder DIR (a local "
                        "bert-base-uncased directory; `huggingface-cli download bert-base-uncased --local-dir DIR` "
                        "on a machine with internet)")
    if text_encoder is not None and not Path(text_encoder).is_dir():
        raise UserError(f"--text-encoder {text_encoder}: no such directory")
    if text_encoder is not None:  # its config.json, before any compute (--dry-run too); weights at load
        from glip.language import check_bert_config

        try:
            check_bert_config(Path(text_encoder))
        except ValueError as e:
            raise UserError(str(e)) from None


def build_model(cfg: GLIPConfig, checkpoint: str | None, text_encoder: str | Path | None = None) -> nn.Module:
    """A GLIP from a config, with weights from `checkpoint` (official .pth or our safetensors) if given.

    text_encoder: a local bert-base-uncased directory, for the presets without a built-in vocabulary
    (glip-t, glip-l); it is not part of the run spec, since a checkpoint carries BERT's weights too.

    The random init (every weight when there is no checkpoint) comes from a fixed seed, so one spec gives
    one base model in every process and a run's adapter can be re-applied to it later; the caller's
    global RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        try:
            return glip.from_pretrained(cfg, checkpoint=checkpoint, text_encoder=text_encoder)
        except (ValueError, FileNotFoundError, KeyError) as e:  # glip's loaders name the file and the fix
            raise UserError(str(e)) from e


class GLIPAdapter:
    """A GLIP model (`module`) run through the cached chunk engine; it can run every regime."""

    family = "glip"

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.anchor: ClassAnchor | None = None  # class-anchored prompt offsets (anchor_prompt_offsets), if installed

    @property
    def config(self) -> GLIPConfig:
        return self.module.config

    def refuses(self, regime: str) -> str | None:
        return None

    def prompt_chunks(self, task: Any, dataset: Any, prompt_set: str) -> list[tuple[Any, list[int]]]:
        return task_prompt_chunks(task, dataset, self.module.tokenizer, prompt_set, self.config.max_query_len)

    def detect_images(self, dataset: Any, chunks: Sequence[tuple[Any, list[int]]], settings: DetectSettings, *,
                      image_ids: Sequence[int] | None = None, timer: Any = None) -> Iterator[tuple[int, np.ndarray]]:
        """The engine's detections, per image as its batch finishes; its per-image cap after the merge is either
        the per-chunk cap or none."""
        if settings.per_image_cap not in (None, settings.per_chunk_cap):
            raise ValueError(f"the GLIP engine caps merged detections at the per-chunk cap ({settings.per_chunk_cap}) "
                             f"or not at all, not at {settings.per_image_cap}")
        rows = None if self.anchor is None else [self.offset_rows(pair) for pair in chunks]
        return engine.iter_detection(
            self.module, dataset, [ch for ch, _ in chunks], settings.per_chunk_cap, settings.batch_size,
            settings.device, num_workers=settings.num_workers, timer=timer, image_ids=image_ids,
            autocast_dtype=settings.autocast_dtype, merge_cap=settings.per_image_cap is not None, offset_rows=rows)

    def ground(self, dataset: Any, settings: DetectSettings, *, sample_ids: Sequence[int] | None = None,
               timer: Any = None) -> list[dict[str, Any]]:
        preds, _ = engine.predict_grounding(self.module, dataset, settings.device, sample_ids=sample_ids,
                                            num_workers=settings.num_workers, timer=timer,
                                            autocast_dtype=settings.autocast_dtype)
        return preds

    def parameter_groups(self) -> Mapping[str, list[str]]:
        return self.module.parameter_groups()

    # --- training (beyond the protocol: what bench.runs.train_stage needs of a model that trains)
    @property
    def size_divisibility(self) -> int:
        return self.config.size_divisibility

    def record_fields(self, trains: bool) -> dict[str, Any]:
        """A training run states its input recipe (multi-scale sizes, size cap, flip); nothing else."""
        return {"provenance": {"train_input": TrainInput.of(self.config).as_dict()}} if trains else {}

    def training_set(self, dataset: Any, chunk: tuple[Any, list[int]], seed: int) -> DetectionTrainSet:
        """TrainSamples of a detection data set under a one-caption class prompt (targets in category order)."""
        rows = None if self.anchor is None else self.offset_rows(chunk)
        chunk = chunk[0]  # (PromptChunk, category ids): the positive map already orders the phrases
        class_map = chunk.positive_map[torch.tensor(chunk.phrase_indices).argsort()]  # rows in category order
        return DetectionTrainSet(dataset, chunk.caption, class_map, TrainInput.of(self.config), seed=seed,
                                 size_divisibility=self.config.size_divisibility, offset_rows=rows)

    def sampled_training_set(self, dataset: Any, entries: Mapping[int, tuple[str, str, str]], separator: str,
                             settings: TrainPrompt, seed: int) -> SampledCaptionTrainSet:
        """TrainSamples of a detection data set, each image under its own sampled caption over `entries`
        (category id -> prefix, name, suffix) within max_query_len - 2 tokens (bench.data.od_captions)."""
        tokenizer = self.module.tokenizer
        sampler = CaptionSampler(entries, lambda text: len(tokenizer.tokenize(text)), self.config.max_query_len - 2,
                                 separator, settings, seed)
        return SampledCaptionTrainSet(dataset, sampler, tokenizer, self.config.max_query_len, TrainInput.of(self.config),
                                      seed=seed, size_divisibility=self.config.size_divisibility, anchor=self.anchor)

    # --- class-anchored prompt offsets (bench.data.prompt_anchor): prompt tuning when captions change
    def anchor_prompt_offsets(self, chunks: Sequence[tuple[Any, list[int]]]) -> ClassAnchor:
        """Replace the per-position offset table by a zero one anchored to the classes of `chunks` (the evaluated
        prompt) and their caption words; training, early stopping and evaluation then look rows up by token."""
        tokenizer = self.module.tokenizer
        self.anchor = ClassAnchor.build((tokenizer(ch.caption)["input_ids"], ch.positive_map, cats)
                                        for ch, cats in chunks)
        old = self.module.prompt_offset
        self.module.prompt_offset = nn.Parameter(old.new_zeros(self.anchor.size, old.shape[1]),
                                                 requires_grad=old.requires_grad)
        return self.anchor

    def offset_rows(self, pair: tuple[Any, list[int]]) -> torch.Tensor:
        """[max_query_len] the anchored table's row of each token of a (PromptChunk, category ids) caption."""
        chunk, category_ids = pair
        ids = self.module.tokenizer(chunk.caption)["input_ids"]
        return self.anchor.rows(ids, chunk.positive_map, category_ids, self.config.max_query_len)
