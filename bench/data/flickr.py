"""Flickr30K Entities grounding: MDETR's final_flickr_separateGT_{val,test}.json + the Entities files.

The MDETR json gives, per (image, sentence) entry, the caption and `tokens_positive_eval` (one list of
char spans per phrase that has a box, in sentence order). The recall ground truth comes from the
official Flickr30K Entities `Annotations/<image>.xml` (boxes per entity id) and `Sentences/<image>.txt`
(phrases, entity ids, types), as the official evaluator reads them
(maskrcnn_benchmark/data/datasets/evaluation/flickr/flickr_eval.py): phrases without a box (nobndbox /
scene) are dropped and a sentence without any boxed phrase is not evaluated, so such entries are left
out of the data set. Separate ground truth (ANY-BOX): every box of an entity stays a separate box.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from bench.data.coco import _duplicates, _is_int, read_ann_json
from bench.data.types import GroundingDataset, GroundingSample, ImageInfo, Phrase
from bench.util.errors import UserError
from bench.util.logs import get_logger

log = get_logger("data")


def parse_sentences(path: Path) -> list[dict[str, Any]]:
    """Parse a Flickr30K Entities Sentences/<image>.txt file.

    Each line is one sentence with bracketed phrases "[/EN#<entity id>/<type>[/<type>...] words]".
    Returns per sentence {"sentence": plain text, "phrases": [{"phrase", "phrase_id", "types",
    "first_word_index", "span": (start, end) in the plain text}]}.
    """
    if not path.is_file():
        raise UserError(f"Flickr30K Entities sentence file not found: {path}")
    sentences = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        words: list[str] = []
        phrases: list[dict[str, Any]] = []
        current: dict[str, Any] | None = None
        for token in line.split():
            if current is None and token.startswith("["):
                parts = token[1:].split("/")  # "[/EN#18/people" -> ["", "EN#18", "people"]
                if len(parts) < 3 or not parts[1].startswith("EN#"):
                    raise UserError(f"{path}:{line_no}: malformed phrase tag {token!r} (expected [/EN#<id>/<type>)")
                current = {"phrase_id": parts[1][3:], "types": parts[2:], "first_word_index": len(words), "words": []}
                continue
            if current is not None:
                closing = token.endswith("]")
                word = token[:-1] if closing else token
                current["words"].append(word)
                words.append(word)
                if closing:
                    phrases.append(current)
                    current = None
            else:
                words.append(token)
        if current is not None:
            raise UserError(f"{path}:{line_no}: phrase EN#{current['phrase_id']} is never closed with ']'")
        sentence = " ".join(words)
        for p in phrases:
            text = " ".join(p.pop("words"))
            start = sum(len(w) for w in words[: p["first_word_index"]]) + p["first_word_index"]
            p["phrase"] = text
            p["span"] = (start, start + len(text))
        sentences.append({"sentence": sentence, "phrases": phrases})
    return sentences


def parse_annotation_xml(path: Path) -> dict[str, Any]:
    """Parse a Flickr30K Entities Annotations/<image>.xml file.

    Returns {"width", "height", "boxes": {entity id: [[xmin, ymin, xmax, ymax], ...]}, "nobox": [...],
    "scene": [...]}; an object with several <name> entries gives its box to each of them.
    """
    if not path.is_file():
        raise UserError(f"Flickr30K Entities annotation file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise UserError(f"malformed XML in {path}: {e}") from e
    size = root.find("size")
    if size is None:
        raise UserError(f"{path}: no <size> element")
    try:
        width, height = int(size.findtext("width")), int(size.findtext("height"))
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: <size> needs integer <width> and <height>") from e
    boxes: dict[str, list[list[float]]] = {}
    nobox: list[str] = []
    scene: list[str] = []
    for obj in root.findall("object"):
        ids = [n.text.strip() for n in obj.findall("name") if n.text and n.text.strip()]
        bnd = obj.find("bndbox")
        if bnd is not None and len(bnd) > 0:
            try:
                box = [float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError) as e:
                raise UserError(f"{path}: object {ids} has a <bndbox> without numeric xmin/ymin/xmax/ymax") from e
            if box[2] < box[0] or box[3] < box[1]:
                raise UserError(f"{path}: object {ids} has a box with negative width/height: {box} (xmin ymin xmax ymax)")
            for i in ids:
                boxes.setdefault(i, []).append(box)
        else:
            if (obj.findtext("nobndbox") or "0").strip() not in ("0", ""):
                nobox.extend(ids)
            if (obj.findtext("scene") or "0").strip() not in ("0", ""):
                scene.extend(ids)
    return {"width": width, "height": height, "boxes": boxes, "nobox": nobox, "scene": scene}


def _as_int(v: Any, what: str, path: Path) -> int:
    if _is_int(v):
        return v
    if isinstance(v, str) and v.strip().isdigit():  # MDETR writes sizes as strings (xmltodict)
        return int(v)
    raise UserError(f"{path}: {what} must be an integer, got {v!r}")


def _validate_mdetr(data: Any, path: Path) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{path}: expected an MDETR grounding json with an 'images' list of entries")
    entries = data["images"]
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise UserError(f"{path}: images[{i}] must be an object")
        for key in ("id", "file_name", "caption", "tokens_positive_eval", "original_img_id", "sentence_id"):
            if key not in e:
                raise UserError(f"{path}: entry images[{i}] has no {key!r} (is this an MDETR final_flickr json?)")
        _as_int(e["id"], f"images[{i}].id", path)
        tpe = e["tokens_positive_eval"]
        if not isinstance(tpe, list) or not all(
            isinstance(spans, list) and all(isinstance(s, (list, tuple)) and len(s) == 2 for s in spans) for spans in tpe
        ):
            raise UserError(f"{path}: entry id {e['id']} tokens_positive_eval must be a list of [[start, end], ...] per phrase")
    dup = _duplicates([_as_int(e["id"], "id", path) for e in entries])
    if dup:
        raise UserError(f"{path}: duplicate entry ids {dup[:10]}")
    ids = {_as_int(e["id"], "id", path) for e in entries}
    anns = data.get("annotations", [])
    if not isinstance(anns, list):
        raise UserError(f"{path}: 'annotations' must be a list")
    dup = _duplicates([a.get("id") for a in anns if isinstance(a, dict)])
    if dup:
        raise UserError(f"{path}: duplicate annotation ids {dup[:10]}")
    for i, a in enumerate(anns):
        if not isinstance(a, dict) or a.get("image_id") not in ids:
            raise UserError(f"{path}: annotation {i} points at image_id {a.get('image_id') if isinstance(a, dict) else a!r}, which is not an entry id")
        box = a.get("bbox")
        if not isinstance(box, list) or len(box) != 4:
            raise UserError(f"{path}: annotation id {a.get('id')} has bbox {box!r}; expected [x, y, width, height]")
        if box[2] < 0 or box[3] < 0:
            raise UserError(f"{path}: annotation id {a.get('id')} has a box with negative width/height: bbox {box}")
        if "tokens_positive" not in a:
            raise UserError(f"{path}: annotation id {a.get('id')} has no 'tokens_positive'")


def load_mdetr_flickr(
    ann_file: Path,
    images_dir: Path,
    entities_dir: Path,
    *,
    name: str,
    split: str,
    source: str = "",
) -> GroundingDataset:
    """Load an MDETR Flickr json and join it with the Flickr30K Entities ground truth.

    Each entry's tokens_positive_eval phrases must match, in order and text, the boxed phrases of
    sentence `sentence_id` in Sentences/<original_img_id>.txt; a mismatch means the json and the
    Entities files are from different releases and raises a UserError.
    """
    ann_file, images_dir, entities_dir = Path(ann_file), Path(images_dir), Path(entities_dir)
    data = read_ann_json(ann_file, source)
    _validate_mdetr(data, ann_file)
    how = f"\n  how to obtain it: {source}" if source else ""
    for d, what in ((images_dir, "image directory"), (entities_dir / "Annotations", "Flickr30K Entities Annotations directory"),
                    (entities_dir / "Sentences", "Flickr30K Entities Sentences directory")):
        if not d.is_dir():
            raise UserError(f"{what} not found: {d}{how}")

    images: dict[int, ImageInfo] = {}
    parsed: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    samples: list[GroundingSample] = []
    skipped = 0
    for e in sorted(data["images"], key=lambda e: _as_int(e["id"], "id", ann_file)):
        entry_id = _as_int(e["id"], "id", ann_file)
        img_id = _as_int(e["original_img_id"], f"entry {entry_id} original_img_id", ann_file)
        sent_id = _as_int(e["sentence_id"], f"entry {entry_id} sentence_id", ann_file)
        if img_id not in parsed:
            parsed[img_id] = (
                parse_annotation_xml(entities_dir / "Annotations" / f"{img_id}.xml"),
                parse_sentences(entities_dir / "Sentences" / f"{img_id}.txt"),
            )
        xml, sentences = parsed[img_id]
        if not 0 <= sent_id < len(sentences):
            raise UserError(
                f"{ann_file}: entry {entry_id} has sentence_id {sent_id} but {entities_dir / 'Sentences' / f'{img_id}.txt'} "
                f"has {len(sentences)} sentences"
            )
        sent = sentences[sent_id]
        boxed = [p for p in sent["phrases"] if p["phrase_id"] in xml["boxes"]]
        spans_eval = e["tokens_positive_eval"]
        if e["caption"] != sent["sentence"] or len(spans_eval) != len(boxed):
            raise UserError(
                f"{ann_file}: entry {entry_id} (image {img_id}, sentence {sent_id}) does not match the Flickr30K "
                f"Entities files: caption {e['caption']!r} with {len(spans_eval)} eval phrases vs "
                f"{sent['sentence']!r} with {len(boxed)} boxed phrases (are both from the same release?)"
            )
        phrases = []
        for spans, p in zip(spans_eval, boxed):
            spans = [(int(s), int(t)) for s, t in spans]
            texts = [e["caption"][s:t] for s, t in spans]
            if p["phrase"] not in texts:
                raise UserError(
                    f"{ann_file}: entry {entry_id} phrase spans {spans} cover {texts}, but the Entities phrase "
                    f"EN#{p['phrase_id']} is {p['phrase']!r}"
                )
            phrases.append(Phrase(p["phrase_id"], spans, [list(b) for b in xml["boxes"][p["phrase_id"]]], list(p["types"])))
        if not phrases:
            skipped += 1  # the official evaluator skips sentences without a boxed phrase
            continue
        if img_id not in images:
            fname = e["file_name"]
            w = _as_int(e.get("width", xml["width"]), f"entry {entry_id} width", ann_file)
            h = _as_int(e.get("height", xml["height"]), f"entry {entry_id} height", ann_file)
            images[img_id] = ImageInfo(img_id, fname, images_dir / fname, w, h)
        samples.append(GroundingSample(entry_id, images[img_id], e["caption"], phrases, sent_id, img_id))
    if skipped:
        log.info("%s: %d sentences have no boxed phrase and are not evaluated (as the official evaluator)", ann_file, skipped)
    return GroundingDataset(name=name, split=split, ann_file=ann_file, images=list(images.values()), samples=samples)
