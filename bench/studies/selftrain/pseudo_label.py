"""Pseudo-labelling: a teacher grounds the noun phrases of image-caption pairs; its confident boxes
become MDETR-style grounding data a student trains on (GLIP section 3.3, "scaling up with
image-text data": the teacher's "educated guesses").

Captions file (`--captions`): a JSON list, or JSONL (one object per line), of
    {"file_name": "relative/to/--images.png", "caption": "a red star left of a blue ring", "id": 7}
`id` (a positive integer, unique) is optional and defaults to the record's 1-based position. An image
may appear in several records (one per caption).

Output: the MDETR grounding json the training path reads (bench.data.training.load_grounding_entries),
the layout of the synthetic pretraining json (bench/synthetic/__init__.py):
    images: {"id" (the caption record id), "file_name", "height", "width", "caption",
             "source": "pseudo", "dataset_name": "pseudo", "original_img_id", "sentence_id",
             "tokens_positive_eval": [[[s, e]], ...] one span list per phrase that kept a box,
             "tokens_negative", "phrases": [text of each extracted phrase], "phrase_spans": [[s, e], ...]}
    annotations: {"id", "image_id", "category_id": 1, "bbox": [x, y, w, h] (legacy +1 width),
                  "area", "iscrowd": 0, "tokens_positive": [[s, e]], "phrase_ids", "score"}
    info: {"tool", "teacher", "threshold", "extractor", "captions_sha256", "summary"}

Resuming: finished records are appended, one JSON line each, to `<out>.partial.jsonl` (its first line
holds the settings); a rerun with the same settings skips them, and the final json is written
atomically at the end, after which the partial file is removed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.studies.selftrain.phrases import NounPhrase, RuleExtractor, SpacyExtractor, get_extractor
from bench.util.errors import UserError
from bench.util.io import atomic_write_json, read_json, sha256_file
from bench.util.logs import get_logger, progress

log = get_logger("selftrain")
FORMAT_VERSION = 1
TOOL = "glip-bench pseudo-label"


@dataclass(frozen=True)
class CaptionRecord:
    id: int
    file_name: str
    caption: str


class Teacher(Protocol):
    """What pseudo-labelling needs of a model (glip.GLIP has all of it)."""

    tokenizer: Any
    config: Any

    def preprocess(self, images: list) -> Any: ...

    def detect(self, images: Any, captions: list[str], positive_maps: list) -> list: ...


# ------------------------------------------------------------------------------------------ captions
def read_captions(path: str | os.PathLike) -> list[CaptionRecord]:
    """Read a captions file (JSON list or JSONL of {"file_name", "caption", optional "id"})."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"captions file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        raw = read_json(path)
        where = [f"{path} item {i}" for i in range(len(raw))]
    else:
        raw, where = [], []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path} line {n} is not JSON: {e}") from e
                where.append(f"{path} line {n}")
    records, seen = [], set()
    for k, (item, loc) in enumerate(zip(raw, where)):
        if not isinstance(item, dict):
            raise UserError(f"{loc}: expected an object with 'file_name' and 'caption'")
        file_name, caption = item.get("file_name"), item.get("caption")
        if not isinstance(file_name, str) or not file_name:
            raise UserError(f"{loc}: 'file_name' (a path under the images directory) is missing")
        if not isinstance(caption, str) or not caption.strip():
            raise UserError(f"{loc}: 'caption' is missing or empty")
        rid = item.get("id", k + 1)
        if not isinstance(rid, int) or isinstance(rid, bool) or rid < 1:
            raise UserError(f"{loc}: 'id' must be a positive integer, got {rid!r}")
        if rid in seen:
            raise UserError(f"{loc}: duplicate id {rid}")
        seen.add(rid)
        records.append(CaptionRecord(rid, file_name, caption))
    if not records:
        raise UserError(f"captions file {path} holds no records")
    return records


# ----------------------------------------------------------------------------------------- labelling
def _boxes_xywh(boxes_xyxy: Any) -> list[list[float]]:
    """Legacy xyxy [N, 4] -> COCO xywh with the official +1 width, 2 decimals (computed in float64)."""
    import torch

    from glip.ops.boxes import xyxy_to_xywh

    xywh = xyxy_to_xywh(torch.as_tensor(boxes_xyxy, dtype=torch.float64).reshape(-1, 4))
    return [[round(v, 2) for v in row] for row in xywh.tolist()]


def _label_batch(teacher: Teacher, batch: list[tuple[CaptionRecord, Any, list[NounPhrase]]], threshold: float,
                 device: str) -> list[dict]:
    """Ground each record's phrases; one finished-entry dict per record."""
    import torch

    from glip.prompts import positive_map

    max_len = int(getattr(teacher.config, "max_query_len", 256))
    entries, todo = [], []
    for rec, image, phrases in batch:
        entry = {"id": rec.id, "file_name": rec.file_name, "caption": rec.caption, "width": image.width,
                 "height": image.height, "phrases": [[p.text, p.start, p.end] for p in phrases], "boxes": [],
                 "below_threshold": 0, "skipped": None}
        entries.append(entry)
        if not phrases:
            continue
        try:
            pm = positive_map(teacher.tokenizer, rec.caption, [[(p.start, p.end)] for p in phrases], max_len=max_len)
        except ValueError as e:  # longer than the text encoder takes: counted and logged, never silent
            entry["skipped"] = str(e)
            log.warning("record %s (%s) skipped: %s", rec.id, rec.file_name, e)
            continue
        todo.append((entry, image, pm))
    if todo:
        images = teacher.preprocess([im for _, im, _ in todo])
        images = images.to(device) if hasattr(images, "to") else images
        dets = teacher.detect(images, [e["caption"] for e, _, _ in todo], [pm for _, _, pm in todo])
        for (entry, _, _), det in zip(todo, dets):
            scores = det.scores.detach().cpu().float()
            keep = scores >= threshold
            entry["below_threshold"] = int((~keep).sum())
            order = torch.argsort(scores[keep], descending=True, stable=True)
            boxes = det.boxes_xyxy.detach().cpu().float()[keep][order]
            labels = det.labels.detach().cpu()[keep][order].tolist()
            entry["boxes"] = [[int(lab), box, round(float(s), 5)]
                              for lab, box, s in zip(labels, _boxes_xywh(boxes), scores[keep][order].tolist())]
    return entries


def _partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.jsonl")


def _read_partial(path: Path, settings: dict) -> dict[int, dict]:
    """Finished entries of an interrupted run with the same settings (a torn last line is ignored)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("settings") != settings:
        raise UserError(f"{path} is left from a pseudo-labelling run with other settings "
                        f"({None if not isinstance(header, dict) else header.get('settings')}); "
                        f"rerun with those settings to resume it, or delete the file to start again")
    done: dict[int, dict] = {}
    body = lines[1:]
    for n, line in enumerate(body):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if n == len(body) - 1:  # the write that was interrupted: redo that record
                log.warning("%s: ignoring an incomplete last line (interrupted write)", path)
                continue
            raise UserError(f"{path} line {n + 2} is corrupt; delete the file to start again") from None
        done.setdefault(int(entry["id"]), entry)
    return done


def _append(path: Path, entries: Sequence[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())


def pseudo_label(
    teacher: Teacher,
    captions: str | os.PathLike | Sequence[CaptionRecord],
    image_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    threshold: float = 0.5,
    batch_size: int = 8,
    extractor: str | RuleExtractor | SpacyExtractor = "rule",
    teacher_info: dict[str, Any] | None = None,
    device: str = "cpu",
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Pseudo-label every caption record and write the grounding json `out`; returns the summary.

    Boxes with a score below `threshold` are dropped. teacher_info (preset, checkpoint, its sha256) goes
    into the output's info and the resume settings. stop_after: process at most this many new records
    and return without finalising (an interruption on purpose: tests, time-boxed jobs).
    """
    from PIL import Image

    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold must be in [0, 1], got {threshold}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    out, image_dir = Path(out), Path(image_dir)
    ext = get_extractor(extractor) if isinstance(extractor, str) else extractor
    if isinstance(captions, (str, os.PathLike)):
        captions_sha = sha256_file(captions)
        records = read_captions(captions)
    else:
        records = list(captions)
        captions_sha = None
    missing = [r.file_name for r in records if not (image_dir / r.file_name).is_file()]
    if missing:
        raise UserError(f"{len(missing)} images of the captions file are not under {image_dir}, e.g. {missing[0]}")
    settings = {"version": FORMAT_VERSION, "threshold": threshold, "extractor": ext.name,
                "captions_sha256": captions_sha, "records": len(records), "teacher": teacher_info or {}}

    start = time.perf_counter()
    partial = _partial_path(out)
    done = _read_partial(partial, settings) if partial.is_file() else {}
    resumed = len(done)
    if resumed:
        log.info("resuming %s: %d of %d records already labelled", out, resumed, len(records))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"settings": settings}) + "\n", encoding="utf-8")
    todo = [r for r in records if r.id not in done]
    if stop_after is not None:
        todo = todo[:stop_after]
    batches = [todo[b: b + batch_size] for b in range(0, len(todo), batch_size)]
    for chunk in progress(batches, desc="pseudo-label", total=len(batches)):
        batch = []
        for rec in chunk:
            try:
                image = Image.open(image_dir / rec.file_name).convert("RGB")
            except OSError as e:
                raise UserError(f"cannot read image {image_dir / rec.file_name}: {e}") from e
            batch.append((rec, image, ext(rec.caption)))
        entries = _label_batch(teacher, batch, threshold, device)
        _append(partial, entries)
        done.update((e["id"], e) for e in entries)
    if len(done) < len(records):
        log.info("stopped with %d of %d records labelled; rerun to continue", len(done), len(records))
        return {"finished": False, "labelled": len(done), "records": len(records)}

    data = build_grounding_json([done[r.id] for r in records])
    summary = label_counts(data, [done[r.id] for r in records])
    summary.update(extractor=ext.name, threshold=threshold, resumed=resumed, out=str(out),
                   seconds=time.perf_counter() - start, finished=True)
    data["info"] = {"tool": TOOL, "version": FORMAT_VERSION, "teacher": teacher_info or {}, "threshold": threshold,
                    "extractor": ext.name, "captions_sha256": captions_sha, "summary": dict(summary)}
    atomic_write_json(out, data, indent=None)
    partial.unlink()
    summary["out_sha256"] = sha256_file(out)
    log.info("pseudo-labels: %(entries)d records, %(images)d images, %(phrases)d phrases, %(boxes)d boxes "
             "kept (%(boxes_below_threshold)d below threshold), %(unique_phrases)d unique phrases", summary)
    return summary


def build_grounding_json(entries: Sequence[dict]) -> dict[str, Any]:
    """Finished entries (in record order) -> MDETR grounding dict (module docstring)."""
    images, anns = [], []
    image_index: dict[str, int] = {}
    sentences: dict[str, int] = {}
    for e in entries:
        orig = image_index.setdefault(e["file_name"], len(image_index) + 1)
        sentence = sentences.get(e["file_name"], 0)
        sentences[e["file_name"]] = sentence + 1
        kept = sorted({lab for lab, _, _ in e["boxes"]})  # phrases with at least one box, caption order
        pid = {lab: k for k, lab in enumerate(kept)}
        images.append({
            "id": e["id"], "file_name": e["file_name"], "height": e["height"], "width": e["width"],
            "caption": e["caption"], "source": "pseudo", "dataset_name": "pseudo", "original_img_id": orig,
            "sentence_id": sentence, "tokens_negative": [[0, len(e["caption"])]],
            "tokens_positive_eval": [[[e["phrases"][lab][1], e["phrases"][lab][2]]] for lab in kept],
            "phrases": [p[0] for p in e["phrases"]], "phrase_spans": [[p[1], p[2]] for p in e["phrases"]],
        })
        for lab, (x, y, w, h), score in e["boxes"]:
            _, s, t = e["phrases"][lab]
            anns.append({"id": len(anns) + 1, "image_id": e["id"], "category_id": 1, "bbox": [x, y, w, h],
                         "area": round(w * h, 2), "iscrowd": 0, "tokens_positive": [[s, t]], "phrase_ids": pid[lab],
                         "score": score})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "object", "supercategory": "object"}]}


def label_counts(data: dict[str, Any], entries: Sequence[dict]) -> dict[str, Any]:
    """How much the teacher labelled: the counts a reader checks before training on the file."""
    phrases = [p[0].lower() for e in entries for p in e["phrases"]]
    kept = [e["phrases"][lab][0].lower() for e in entries for lab in {b[0] for b in e["boxes"]}]
    return {
        "entries": len(entries),
        "images": len({e["file_name"] for e in entries}),
        "phrases": len(phrases),
        "phrases_with_boxes": len(kept),
        "boxes": len(data["annotations"]),
        "boxes_below_threshold": sum(e["below_threshold"] for e in entries),
        "unique_phrases": len(set(phrases)),
        "unique_phrases_with_boxes": len(set(kept)),
        "no_phrases": sum(1 for e in entries if not e["phrases"]),
        "skipped": sum(1 for e in entries if e["skipped"]),
    }


# ---------------------------------------------------------------------------------- student training
def merge_grounding(
    sources: Sequence[tuple[str | os.PathLike, str | os.PathLike, str]], out: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Union of grounding jsons (human + pseudo) as one training json; returns (json path, its image root).

    sources: (grounding json, its image root, origin tag such as "human" or "pseudo"). Image and
    annotation ids are renumbered; file names are rewritten relative to `image_root` (default: the
    folder of `out`), so `bench.runs.train.pretrain([json], [root])` reads the union. Each image record keeps
    its "source" and gains "origin"; info.merged_from lists every input with its sha256.
    """
    out = Path(out)
    root = Path(image_root) if image_root is not None else out.parent
    images, anns, merged_from = [], [], []
    for path, src_root, origin in sources:
        data = read_json(path)
        for key in ("images", "annotations"):
            if key not in data:
                raise UserError(f"{path} is not an MDETR-style grounding json: no '{key}' list")
        new_id = {}
        for img in data["images"]:
            rec = dict(img)
            new_id[int(img["id"])] = rec["id"] = len(images) + 1
            rec["file_name"] = os.path.relpath(Path(src_root).resolve() / img["file_name"], root.resolve())
            rec.setdefault("source", origin)
            rec["origin"] = origin
            images.append(rec)
        for ann in data["annotations"]:
            if int(ann["image_id"]) not in new_id:
                raise UserError(f"{path}: annotation {ann.get('id')} refers to image {ann['image_id']}, not in the file")
            rec = dict(ann)
            rec["id"] = len(anns) + 1
            rec["image_id"] = new_id[int(ann["image_id"])]
            anns.append(rec)
        merged_from.append({"file": str(path), "sha256": sha256_file(path), "origin": origin,
                            "images": len(data["images"]), "annotations": len(data["annotations"])})
    atomic_write_json(out, {"images": images, "annotations": anns, "info": {"merged_from": merged_from},
                            "categories": [{"id": 1, "name": "object", "supercategory": "object"}]}, indent=None)
    return out, root


def self_training_provenance(pseudo_json: str | os.PathLike,
                             teacher_checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a student record's provenance must say about its pseudo-labels (put under provenance extra)."""
    info = read_json(pseudo_json).get("info", {})
    teacher = dict(info.get("teacher", {}))
    sha = teacher.get("checkpoint_sha256")
    if teacher_checkpoint is not None:
        sha = sha256_file(teacher_checkpoint)
    return {"self_training": {
        "teacher_preset": teacher.get("preset"),
        "teacher_checkpoint_sha256": sha,
        "pseudo_labels_file": str(pseudo_json),
        "pseudo_labels_sha256": sha256_file(pseudo_json),
        "threshold": info.get("threshold"),
        "extractor": info.get("extractor"),
    }}


# --------------------------------------------------------------------------------------- the teacher
def load_teacher(preset: str, checkpoint: str | os.PathLike | None = None, tokenizer: str | os.PathLike | None = None,
                 device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """(GLIP in eval mode, teacher_info) for a preset + checkpoint (+ a local tokenizer dir)."""
    import glip

    if checkpoint is not None and not Path(checkpoint).is_file():
        raise UserError(f"teacher checkpoint not found: {checkpoint}")
    tok = None
    if tokenizer is not None:
        from glip.language import load_tokenizer

        try:
            tok = load_tokenizer(tokenizer)
        except (OSError, FileNotFoundError, ValueError) as e:
            raise UserError(f"cannot load the tokenizer from {tokenizer}: {e}") from e
    try:
        model = glip.from_pretrained(preset, checkpoint=None if checkpoint is None else str(checkpoint), tokenizer=tok)
    except KeyError as e:
        raise UserError(str(e).strip("'\"")) from None
    info = {"preset": preset, "checkpoint": None if checkpoint is None else str(checkpoint),
            "checkpoint_sha256": None if checkpoint is None else sha256_file(checkpoint)}
    return model.to(device).eval(), info
