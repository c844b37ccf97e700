"""`GenerativeAdapter`: a model that answers in text, behind the harness's DetectorAdapter protocol.

Per (image, prompt): the family's prompt, greedy generation (no sampling, one beam) with a token budget
from the task's detection cap, the answer decoded with its special tokens, parsed in the family's
declared coordinate convention (bench.models.generative.<family>), labels matched exactly to the
prompt's classes, and each box scored by the probability the generation gave its label tokens (its box
tokens where the answer carries no label). Nothing here sees the ground truth. The record states the
convention, the score definition, the pixel path and the parse counts (`record_fields`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.models.base import DetectSettings, grounding_entry, merge_chunks
from bench.models.generative.answers import (
    AnswerCounts,
    Parse,
    View,
    label_key,
    match_labels,
    span_score,
    token_spans,
)
from bench.models.generative.loading import Loaded
from bench.models.hf.adapter import TRAIN_FLIP_PROB, HFDetector
from bench.models.hf.outputs import coco_rows

SCORE = ("product of the generation's softmax probabilities (raw logits, before any logits processor) of the "
         "box's label tokens, given the image, the prompt and the answer before them; of its coordinate tokens "
         "where the answer carries no label (Kosmos-2's one-phrase prompts)")
WORST_CASE_SIZE = 9999  # the token budget counts coordinates as written for a 4-digit-pixel image


@dataclass(frozen=True)
class GenChunk:
    """One prompt: the class entries it names (as the task's prompt set writes them) and its text."""

    entries: tuple[str, ...]
    prompt: str


class GenerativeModule(HFDetector):
    """The module the harness counts, trains and saves: the transformers model (its loss, for training), as
    the hf detectors'; only the parameter groups differ (a vision tower, and a language model for the rest)."""

    def parameter_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {"backbone": [], "language": [], "fpn": [], "head": [], "fusion": []}
        for name, _ in self.named_parameters():
            vision = any(m in name for m in ("vision", "visual", "image_", "multi_modal_projector"))
            groups["backbone" if vision else "language"].append(name)
        return groups


class GenerativeAdapter:
    """Detection (every family) and phrase grounding (families that ground) by generated text."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.fam = loaded.family
        self.family = self.fam.NAME
        self.module = GenerativeModule(loaded.model)
        self.counts = AnswerCounts()
        self.budgets: dict[str, int] = {}  # max_new_tokens per prompt text
        self._budgets: dict[tuple[tuple[str, ...], int], int] = {}
        self.size_divisibility = 0

    # ------------------------------------------------------------------ protocol
    def refuses(self, regime: str) -> str | None:
        return refusal(self.fam, regime)

    def parameter_groups(self) -> Mapping[str, list[str]]:
        return self.module.parameter_groups()

    def prompt_chunks(self, task: Any, dataset: Any, prompt_set: str) -> list[tuple[GenChunk, list[int]]]:
        """The task's classes in prompts: the family's classes per prompt (one, for one-phrase families),
        else the task's chunk_size (all classes when it has none)."""
        from bench.models.hf.prompts import class_entries

        entries, _, ids = class_entries(task, dataset, prompt_set)
        size = self.fam.CLASSES_PER_PROMPT or task.chunk_size or len(entries)
        out = []
        for i in range(0, len(entries), size):
            names = tuple(entries[i:i + size])
            out.append((GenChunk(names, self.fam.detection_prompt([n.strip() for n in names])), ids[i:i + size]))
        return out

    def detect_images(self, dataset: Any, chunks: Sequence[tuple[GenChunk, list[int]]], settings: DetectSettings, *,
                      image_ids: Sequence[int] | None = None, timer: Any = None) -> Iterator[tuple[int, np.ndarray]]:
        self.module.to(settings.device).eval()
        self.start_counts(whole_split=image_ids is None)
        for image_id in (image_ids if image_ids is not None else dataset.image_ids):
            image = dataset.load_image(image_id).convert("RGB")
            parts = []
            for chunk, cat_ids in chunks:
                classes = {label_key(e): c for e, c in zip(chunk.entries, cat_ids)}
                phrase = chunk.entries[0].strip() if len(chunk.entries) == 1 else None
                budget = self.token_budget(chunk.entries, settings.per_chunk_cap)
                parse, scores = self.answer(image, chunk.prompt, budget, settings, timer, phrase=phrase)
                matched, unmatched = match_labels(parse.objects, classes)
                self.counts.add(parse, unmatched)
                matched = sorted(matched, key=lambda m: -scores[m[0]])[:settings.per_chunk_cap]  # stable
                parts.append((torch.tensor([parse.objects[k].box for k, _ in matched]).reshape(-1, 4),
                              torch.tensor([scores[k] for k, _ in matched], dtype=torch.float32),
                              torch.tensor([c for _, c in matched], dtype=torch.long)))
            yield image_id, coco_rows(image_id, *merge_chunks(parts, settings.per_image_cap))

    def ground(self, dataset: Any, settings: DetectSettings, *, sample_ids: Sequence[int] | None = None,
               timer: Any = None) -> list[dict[str, Any]]:
        """Per entry: the caption in one prompt (Florence-2) or one prompt per phrase (the others)."""
        why = refusal(self.fam, "zero-shot", grounding=True)
        if why:
            raise ValueError(why)
        self.module.to(settings.device).eval()
        self.start_counts(whole_split=sample_ids is None)
        preds = []
        for sid in (sample_ids if sample_ids is not None else [s.id for s in dataset.samples]):
            sample = dataset.sample(sid)
            image = dataset.load_image(sid).convert("RGB")
            texts = [" ".join(sample.caption[s:e] for s, e in p.spans) for p in sample.phrases]
            found: list[tuple[tuple[float, ...], float, int]] = []
            if hasattr(self.fam, "grounding_prompt"):
                budget = self.token_budget(tuple(texts), settings.per_chunk_cap)
                parse, scores = self.answer(image, self.fam.grounding_prompt(sample.caption), budget, settings, timer)
                matched, unmatched = match_labels(parse.objects, {label_key(t): p for p, t in enumerate(texts)})
                self.counts.add(parse, unmatched)
                found += [(parse.objects[k].box, scores[k], p) for k, p in matched]
            else:
                for p, text in enumerate(texts):
                    budget = self.token_budget((text,), settings.per_chunk_cap)
                    parse, scores = self.answer(image, self.fam.detection_prompt([text.strip()]), budget, settings,
                                                timer, phrase=text.strip())
                    matched, unmatched = match_labels(parse.objects, {label_key(text): p})
                    self.counts.add(parse, unmatched)
                    found += [(parse.objects[k].box, scores[k], p) for k, _ in matched]
            found.sort(key=lambda f: -f[1])  # stable
            found = found[:settings.per_chunk_cap]  # the entry's top boxes, as every grounding model keeps
            boxes = torch.tensor([f[0] for f in found], dtype=torch.float32).reshape(-1, 4)
            preds.append(grounding_entry(sid, boxes, torch.tensor([f[1] for f in found]),
                                         torch.tensor([f[2] for f in found], dtype=torch.long), len(sample.phrases)))
        return preds

    def start_counts(self, whole_split: bool) -> None:
        """The record counts the answers of the last split predicted whole (the eval split, after any
        few-shot val scoring during training); pieces of a split (ids given) add up."""
        if whole_split:
            self.counts = AnswerCounts()

    # ------------------------------------------------------------------ one answer
    def token_budget(self, entries: Sequence[str], cap: int) -> int:
        """max_new_tokens for `cap` objects named by the longest entry: the tokens of one object, plus
        (cap - 1) times what each further object adds, plus one for the end token."""
        key = (tuple(entries), cap)
        if key not in self._budgets:
            self._budgets[key] = self._budget(entries, cap)
        return self._budgets[key]

    def _budget(self, entries: Sequence[str], cap: int) -> int:
        tok = self.loaded.tokenizer
        longest = max(entries, key=lambda e: len(tok(e.strip(), add_special_tokens=False)["input_ids"]))
        box = (0.0, 0.0, WORST_CASE_SIZE - 1.0, WORST_CASE_SIZE - 1.0)
        n1, n2 = (len(tok(self.fam.format_answer([(longest.strip(), box)] * k, WORST_CASE_SIZE, WORST_CASE_SIZE),
                          add_special_tokens=False)["input_ids"]) for k in (1, 2))
        return n1 + (cap - 1) * (n2 - n1) + 1

    def answer(self, image: Any, prompt: str, budget: int, settings: DetectSettings, timer: Any, *,
               phrase: str | None = None) -> tuple[Parse, list[float]]:
        """Generate, decode and parse one answer: (boxes in original pixels, each box's score)."""
        inputs, (in_w, in_h) = self.inputs(image, prompt)
        self.budgets[prompt] = budget
        ids, logprobs = self.generate(inputs, budget, settings, timer)
        text, spans = token_spans(self.loaded.tokenizer, ids)
        width, height = image.size
        parse = self.fam.parse_answer(text, View(width, height, in_w, in_h, phrase))
        kept = []
        for obj in parse.objects:
            x1, y1, x2, y2 = obj.box
            if x2 < x1 or y2 < y1:  # inverted corners: not a box
                parse.unparseable += 1
                continue
            clipped = (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width),
                       min(max(y2, 0.0), height))
            kept.append(type(obj)(obj.label, clipped, obj.label_span, obj.box_span))
        parse.objects = kept
        scores = [span_score(o.label_span if o.label_span[1] > o.label_span[0] else o.box_span, spans, logprobs)
                  for o in kept]
        return parse, scores

    def inputs(self, image: Any, prompt: str) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
        """The model's inputs for one image and prompt, and the (width, height) of the image it sees."""
        if hasattr(self.fam, "model_inputs"):
            return self.fam.model_inputs(self.loaded, image, prompt)
        text = self.fam.processor_text(prompt) if hasattr(self.fam, "processor_text") else prompt
        batch = self.loaded.processor(text=text, images=image, return_tensors="pt")
        _, _, h, w = batch["pixel_values"].shape
        return dict(batch), (int(w), int(h))

    def generation_config(self, budget: int) -> Any:
        """The model's own generation config, made greedy: no sampling, one beam, `budget` new tokens."""
        import copy

        gen = copy.deepcopy(self.loaded.model.generation_config)
        gen.do_sample, gen.num_beams, gen.max_new_tokens, gen.max_length = False, 1, budget, None
        gen.temperature = gen.top_p = gen.top_k = None
        gen.num_return_sequences = 1
        gen.eos_token_id = sorted(self.stop_ids())  # the answer ends at the end token or a pad token
        gen.output_logits, gen.return_dict_in_generate = True, True
        return gen

    def generate(self, inputs: dict[str, torch.Tensor], budget: int, settings: DetectSettings, timer: Any
                 ) -> tuple[list[int], torch.Tensor]:
        """Greedy generation: the answer's token ids up to the first end token, and each one's log-probability."""
        device = settings.device
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        dtype = settings.autocast_dtype
        amp = torch.autocast(torch.device(device).type, dtype=dtype) if dtype is not None else nullcontext()
        clock = timer.time("model", device) if timer is not None else nullcontext()
        with torch.no_grad(), amp, clock:
            out = self.loaded.model.generate(**inputs, generation_config=self.generation_config(budget))
        new = out.sequences[0, out.sequences.shape[1] - len(out.logits):].tolist()
        logprobs = torch.stack([torch.log_softmax(step[0].float(), -1)[t] for step, t in zip(out.logits, new)]) \
            if new else torch.zeros(0)
        stop = self.stop_ids()
        end = next((k for k, t in enumerate(new) if t in stop), len(new))
        return new[:end], logprobs[:end].cpu()

    def stop_ids(self) -> set[int]:
        gen, tok = self.loaded.model.generation_config, self.loaded.tokenizer
        eos = gen.eos_token_id if gen.eos_token_id is not None else tok.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos])
        if tok.pad_token_id is not None:
            ids.add(tok.pad_token_id)
        return {i for i in ids if i is not None}

    # ------------------------------------------------------------------ the record
    def limits(self) -> dict[str, Any]:
        fam = self.fam
        budgets = sorted(set(self.budgets.values()))
        return {"family": fam.NAME, "model_class": type(self.loaded.model).__name__, "text_input": fam.PROMPTING,
                "coordinates": fam.COORDINATES, "score": SCORE, "pixel_path": pixel_path(self.loaded),
                "generation": ("greedy (do_sample false, num_beams 1), ending at the end or pad token; the model's "
                               "other generation settings kept"),
                "max_new_tokens": {"min": budgets[0], "max": budgets[-1]} if budgets else None,
                "prompts": len(self.budgets), "prompt_example": next(iter(self.budgets), None),
                "generation_settings": generation_settings(self.generation_config(budgets[-1] if budgets else 1)),
                "answers": self.counts.as_dict(), "score_threshold": 0.0, "infer_batch_size": 1}

    def training_set(self, dataset: Any, chunk: tuple[GenChunk, list[int]], seed: int) -> Any:
        """The detect-format training view (families that train: PaliGemma), flipping as GLIP."""
        from bench.models.generative.training import AnswerTrainSet

        if self.fam.TRAINS is None:
            raise ValueError(f"{self.family} cannot train: {self.fam.WHY_NO_TRAINING}")
        gen_chunk, category_ids = chunk
        return AnswerTrainSet(dataset, category_ids, gen_chunk.entries, gen_chunk.prompt, self.loaded, seed=seed,
                              flip_prob=TRAIN_FLIP_PROB)

    def record_fields(self, trains: bool) -> dict[str, Any]:
        from bench.models.hf.loading import weights_file

        provenance: dict[str, Any] = {"model_limits": self.limits()}
        if trains:
            provenance |= {"train_flip_prob": TRAIN_FLIP_PROB, "train_loss": self.fam.TRAINS}
        return {"model": {"family": self.family, "checkpoint": str(weights_file(self.loaded.folder))},
                "provenance": provenance}


def generation_settings(gen: Any) -> dict[str, Any]:
    """The generation config's settings that differ from transformers' defaults (what decoding ran with),
    the token budget aside (it is per prompt, in max_new_tokens)."""
    out = {}
    for key, value in sorted(gen.to_diff_dict().items()):
        if key in ("max_new_tokens", "transformers_version") or key.startswith("_"):
            continue
        out[key] = value if isinstance(value, (bool, int, float, str, list, type(None))) else repr(value)
    return out


def pixel_path(loaded: Loaded) -> str:
    """Which code made the pixels the model saw."""
    how = getattr(loaded.family, "PIXEL_PATH", None)
    if how is not None:
        template = "the tokenizer's chat template" if getattr(loaded.tokenizer, "chat_template", None) else \
            "Qwen's chat layout written in qwen_common (the tokenizer has no chat template)"
        return f"{how}; prompt from {template}"
    name = type(loaded.image_processor).__name__
    return f"transformers {name} (the processor's PIL backend: torchvision is unusable here)"


def refusal(fam: Any, regime: str, grounding: bool = False) -> str | None:
    """Why family module `fam` cannot run `regime` (on a grounding task when `grounding`), or None."""
    if grounding and not fam.GROUNDS:
        return f"{fam.NAME} cannot run phrase grounding: {fam.WHY_NO_GROUNDING}"
    if grounding and regime != "zero-shot":
        return f"{fam.NAME} on a grounding task: only zero-shot runs are supported"
    if regime == "zero-shot":
        return None
    if fam.TRAINS is None:
        return f"{fam.NAME} cannot run {regime}: {fam.WHY_NO_TRAINING}; only zero-shot"
    if regime != "full-ft":
        return (f"{fam.NAME} cannot run {regime}: only full-ft is defined for it (linear-probe and prompt-tuning "
                "name GLIP's own layers)")
    return None
