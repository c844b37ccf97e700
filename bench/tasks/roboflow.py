"""Roboflow COCO exports as the `rf100vl` package leaves them: the dummy category 0, missing images and
annotator instructions.

A raw Roboflow COCO export lists a category 0 named after the project with supercategory "none" and
no boxes of its own. The rf100vl package's `RF100VlDataset.clean_coco_dataset` (rf100vl/dataset.py,
`get_clean_ann_data`) removes it when it downloads: if the *first listed* category's supercategory is
"none", it drops the category with id 0, shifts every other category id and every annotation's
category_id by -1, and renumbers annotation ids so the smallest is 1. `clean_roboflow_coco` does the same
to the loaded dict (the file on disk is never rewritten), so a folder the package already cleaned and a
raw export score alike. The one departure: an annotation that points at category 0 would get id -1
there, which no category has, so pycocotools never scores it; here it is dropped and counted in the note.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.util.errors import UserError

DUMMY_SUPERCATEGORY = "none"
INSTRUCTIONS_MAX_BYTES = 256 * 1024  # an instructions file is a README, not data: refuse anything larger
DESCRIPTION_MAX_WORDS = 25  # a class description joins a caption of at most 256 tokens


def clean_roboflow_coco(data: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(cleaned copy, note) when `data` carries the dummy category 0; (data, None) when it does not."""
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats or not isinstance(cats[0], dict):
        return data, None
    if cats[0].get("supercategory") != DUMMY_SUPERCATEGORY:
        return data, None
    dummy = next((c for c in cats if isinstance(c, dict) and c.get("id") == 0), None)
    kept_cats = [{**c, "id": c["id"] - 1} for c in cats if isinstance(c, dict) and c.get("id") != 0]
    anns = data.get("annotations") if isinstance(data.get("annotations"), list) else []
    on_dummy = [a for a in anns if isinstance(a, dict) and a.get("category_id") == 0]
    kept_anns = [dict(a) for a in anns if not (isinstance(a, dict) and a.get("category_id") == 0)]
    if anns:
        ids = [a.get("id") for a in anns if isinstance(a, dict) and isinstance(a.get("id"), int)]
        shift = 1 - min(ids) if ids else 0
        for a in kept_anns:
            if isinstance(a.get("category_id"), int):
                a["category_id"] -= 1
            if isinstance(a.get("id"), int):
                a["id"] += shift
    name = dummy.get("name") if dummy else cats[0].get("name")
    note = (f"Roboflow dummy category 0 {name!r} (supercategory 'none') dropped and category ids shifted by -1, "
            "as rf100vl's clean_coco_dataset does")
    if on_dummy:
        note += f"; {len(on_dummy)} annotation(s) on category 0 dropped (pycocotools would not score them there)"
    return {**data, "categories": kept_cats, "annotations": kept_anns}, note


def check_images_present(data: dict[str, Any], images_dir: Path, ann_file: Path, task: str) -> None:
    """Every image the annotation file lists must be on disk: a missing one is named before any compute."""
    missing = [str(im.get("file_name")) for im in data.get("images", [])
               if isinstance(im, dict) and not (images_dir / str(im.get("file_name"))).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"task {task}: {len(missing)} image(s) listed in {ann_file} are missing from {images_dir}: "
                        f"{shown} (re-download the data set, or remove those entries from the annotation file)")


def read_instructions(path: Path) -> str | None:
    """The annotator instructions file's text, or None when the folder has none."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size > INSTRUCTIONS_MAX_BYTES:
        raise UserError(f"{path} is {size} bytes; annotator instructions over {INSTRUCTIONS_MAX_BYTES} bytes are not read")
    return path.read_text(encoding="utf-8", errors="replace")


_HEADING = re.compile(r"^\s*#{1,6}\s*(.+?)\s*#*\s*$")


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def class_descriptions(text: str, class_names: list[str]) -> dict[str, str]:
    """Class name -> the first sentence (at most DESCRIPTION_MAX_WORDS words) under a Markdown heading
    that names the class (case, '_' and '-' ignored). Classes without such a heading are left out."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = _HEADING.match(line)
        if m:
            current = sections.setdefault(_key(m.group(1)), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    out = {}
    for name in class_names:
        body = " ".join(sections.get(_key(name), []))
        body = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", body).strip(" -*")  # images of the multimodal instructions
        if not body:
            continue
        sentence = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0].rstrip(".!? ")
        words = sentence.split()
        if words:
            out[name] = " ".join(words[:DESCRIPTION_MAX_WORDS])
    return out
