"""Pseudo-labelling logic with a deterministic stub teacher: threshold, output format (round trip through
the training loader), resuming an interrupted run, merging human + pseudo data."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.training import load_grounding_entries
from bench.studies.selftrain.phrases import extract_rule
from bench.studies.selftrain.pseudo_label import (
    _boxes_xywh,
    merge_grounding,
    pseudo_label,
    read_captions,
    self_training_provenance,
)
from bench.util.errors import UserError
from glip.language import build_wordpiece_tokenizer
from glip.structures import Detections

WORDS = ["a", "the", "red", "blue", "green", "star", "ring", "heart", "left", "of", "and", "two", "hearts", "above"]
CAPTIONS = [
    "a red star left of a blue ring",
    "two hearts and the green ring",
    "the blue star above a red heart and a green ring",
    "a ring",
    "of and",  # no noun phrase
    "the red ring left of two hearts",
    "a green star",
]
SCORES = (0.9, 0.5, 0.3)  # phrase p's two boxes score SCORES[p % 3] and SCORES[p % 3] - 0.01


class StubTeacher:
    """Deterministic: phrase p of a caption gets two boxes with fixed coordinates and scores."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.tokenizer = build_wordpiece_tokenizer(WORDS)
        self.config = SimpleNamespace(max_query_len=256)
        self.calls = 0
        self.labelled: list[str] = []
        self.fail_on_call = fail_on_call

    def preprocess(self, images):
        return SimpleNamespace(sizes=[im.size for im in images])

    def detect(self, images, captions, positive_maps):
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        out = []
        for (_w, h), caption, pm in zip(images.sizes, captions, positive_maps):
            assert pm.shape == (pm.shape[0], 256) and bool((pm.sum(1) > 0).all())
            self.labelled.append(caption)
            boxes, scores, labels = [], [], []
            for p in range(pm.shape[0]):
                for k in range(2):
                    boxes.append([2.0 * p + k, 1.0 + k, 2.0 * p + 5.0 + k, min(h - 1, 6.0 + k)])
                    scores.append(SCORES[p % 3] - 0.01 * k)
                    labels.append(p)
            out.append(Detections(torch.tensor(boxes).reshape(-1, 4), torch.tensor(scores), torch.tensor(labels)))
        return out


def expected_kept(threshold: float) -> dict[str, list[tuple[int, float]]]:
    """Hand computation: caption -> [(phrase index, score)] of kept boxes."""
    out = {}
    for c in CAPTIONS:
        n = len(extract_rule(c))
        out[c] = [(p, SCORES[p % 3] - 0.01 * k) for p in range(n) for k in range(2)
                  if SCORES[p % 3] - 0.01 * k >= threshold]
    return out


@pytest.fixture
def world(tmp_path):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    for i in range(4):
        Image.fromarray(np.full((20 + i, 30, 3), 40 * i, dtype=np.uint8)).save(img_dir / f"im{i}.png")
    records = [{"file_name": f"im{k % 4}.png", "caption": c} for k, c in enumerate(CAPTIONS)]
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return img_dir, jsonl, records


def test_threshold_and_format(world, tmp_path):
    img_dir, jsonl, _ = world
    out = tmp_path / "pseudo.json"
    summary = pseudo_label(StubTeacher(), jsonl, img_dir, out, threshold=0.5, batch_size=3)
    data = json.loads(out.read_text())
    want = expected_kept(0.5)
    assert summary["boxes"] == len(data["annotations"]) == sum(len(v) for v in want.values())
    all_boxes = sum(len(v) for v in expected_kept(0.0).values())  # threshold 0 keeps every stub box
    assert summary["boxes_below_threshold"] == all_boxes - summary["boxes"] > 0
    assert all(a["score"] >= 0.5 for a in data["annotations"])
    assert summary["entries"] == len(CAPTIONS) and summary["images"] == 4 and summary["no_phrases"] == 1
    assert data["info"]["extractor"] == "rule" and data["info"]["threshold"] == 0.5
    by_id = {img["id"]: img for img in data["images"]}
    for k, caption in enumerate(CAPTIONS):
        img = by_id[k + 1]
        assert img["caption"] == caption and img["source"] == "pseudo"
        anns = sorted((a for a in data["annotations"] if a["image_id"] == k + 1), key=lambda a: -a["score"])
        kept = sorted(want[caption], key=lambda t: -t[1])
        assert [round(a["score"], 4) for a in anns] == [round(s, 4) for _, s in kept]
        for a in anns:
            (s, e), = a["tokens_positive"]
            assert img["tokens_positive_eval"][a["phrase_ids"]] == [[s, e]]
            assert caption[s:e] in img["phrases"]
    # a higher threshold keeps a subset
    out2 = tmp_path / "pseudo2.json"
    s2 = pseudo_label(StubTeacher(), jsonl, img_dir, out2, threshold=0.85)
    assert s2["boxes"] == sum(len(v) for v in expected_kept(0.85).values()) < summary["boxes"]


def test_round_trip_through_the_training_loader(world, tmp_path):
    from bench.data.training import GroundingTrainSet, TrainInput

    img_dir, jsonl, records = world
    out = tmp_path / "pseudo.json"
    teacher = StubTeacher()
    pseudo_label(teacher, jsonl, img_dir, out, threshold=0.0, batch_size=4)
    entries = load_grounding_entries(out, img_dir)
    with_boxes = [c for c in CAPTIONS if expected_kept(0.0)[c]]
    assert [e.caption for e in entries] == with_boxes
    data = json.loads(out.read_text())
    for e in entries:
        caption_id = CAPTIONS.index(e.caption) + 1
        anns = [a for a in data["annotations"] if a["image_id"] == caption_id]
        # legacy xywh (+1) back to the stub's xyxy exactly
        stub = teacher.detect(SimpleNamespace(sizes=[Image.open(e.image_path).size]), [e.caption],
                              [torch.ones(len(extract_rule(e.caption)), 256)])[0]
        got = sorted(map(tuple, e.boxes_xyxy))
        assert got == sorted(map(tuple, stub.boxes_xyxy.tolist()))
        assert e.image_path == img_dir / records[caption_id - 1]["file_name"]
        assert all(e.caption[s:t] for sp in e.spans for s, t in sp) and len(anns) == len(e.spans)
    ds = GroundingTrainSet(entries, teacher.tokenizer,
                           TrainInput((64,), 96, 0.0, (102.98, 115.95, 122.77), (1.0, 1.0, 1.0)))
    sample = ds[0]
    assert sample.target.positive_map.shape[0] == sample.target.boxes_xyxy.shape[0] > 0
    assert bool((sample.target.positive_map.sum(1) > 0).all())


def test_resume_after_interruption_gives_the_same_output(world, tmp_path):
    img_dir, jsonl, _ = world
    ref = tmp_path / "ref.json"
    pseudo_label(StubTeacher(), jsonl, img_dir, ref, threshold=0.4, batch_size=2)

    out = tmp_path / "run.json"
    crashing = StubTeacher(fail_on_call=3)  # two batches finished, the third interrupted
    with pytest.raises(KeyboardInterrupt):
        pseudo_label(crashing, jsonl, img_dir, out, threshold=0.4, batch_size=2)
    partial = out.with_name(out.name + ".partial.jsonl")
    assert not out.exists() and partial.is_file()
    with open(partial, "a") as f:  # a write torn by the interruption
        f.write('{"id": 5, "file_na')
    # other settings must not mix with the interrupted run
    with pytest.raises(UserError, match="other settings"):
        pseudo_label(StubTeacher(), jsonl, img_dir, out, threshold=0.6, batch_size=2)
    second = StubTeacher()
    summary = pseudo_label(second, jsonl, img_dir, out, threshold=0.4, batch_size=2)
    assert summary["resumed"] == 4 and not partial.exists()
    first_done = set(crashing.labelled[:])  # captions labelled before the crash (those with phrases)
    assert not first_done & set(second.labelled)  # nothing labelled twice
    a, b = json.loads(ref.read_text()), json.loads(out.read_text())
    assert a["images"] == b["images"] and a["annotations"] == b["annotations"]
    assert len({img["id"] for img in b["images"]}) == len(CAPTIONS)


def test_stop_after_then_continue(world, tmp_path):
    img_dir, jsonl, _ = world
    out = tmp_path / "run.json"
    first = pseudo_label(StubTeacher(), jsonl, img_dir, out, threshold=0.4, batch_size=2, stop_after=3)
    assert first == {"finished": False, "labelled": 3, "records": len(CAPTIONS)}
    done = pseudo_label(StubTeacher(), jsonl, img_dir, out, threshold=0.4, batch_size=2)
    assert done["finished"] and done["entries"] == len(CAPTIONS) and done["resumed"] == 3


def test_captions_file_formats_and_errors(world, tmp_path):
    img_dir, jsonl, records = world
    as_list = tmp_path / "captions.json"
    as_list.write_text(json.dumps([{**r, "id": 10 + k} for k, r in enumerate(records)]))
    assert [r.id for r in read_captions(as_list)] == list(range(10, 10 + len(records)))
    assert [r.caption for r in read_captions(jsonl)] == CAPTIONS
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"file_name": "im0.png"}\n')
    with pytest.raises(UserError, match="caption"):
        read_captions(bad)
    bad.write_text('{"file_name": "im0.png", "caption": "a star", "id": 1}\n{"file_name": "im1.png", '
                   '"caption": "a ring", "id": 1}\n')
    with pytest.raises(UserError, match="duplicate id 1"):
        read_captions(bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"file_name": "nope.png", "caption": "a star"}\n')
    with pytest.raises(UserError, match="nope.png"):
        pseudo_label(StubTeacher(), missing, img_dir, tmp_path / "x.json")
    with pytest.raises(UserError, match="threshold"):
        pseudo_label(StubTeacher(), jsonl, img_dir, tmp_path / "x.json", threshold=1.5)


def test_merge_human_and_pseudo_for_the_student(world, tmp_path):
    img_dir, jsonl, _ = world
    pseudo = tmp_path / "pseudo.json"
    pseudo_label(StubTeacher(), jsonl, img_dir, pseudo, threshold=0.5,
                 teacher_info={"preset": "stub", "checkpoint": None, "checkpoint_sha256": "ab" * 32})
    human_dir = tmp_path / "human" / "imgs"
    human_dir.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(human_dir / "h.png")
    human = tmp_path / "human" / "human.json"
    human.write_text(json.dumps({
        "images": [{"id": 3, "file_name": "h.png", "height": 16, "width": 16, "caption": "a red star"}],
        "annotations": [{"id": 9, "image_id": 3, "bbox": [1, 1, 5, 5], "category_id": 1,
                         "tokens_positive": [[0, 10]]}]}))
    merged, root = merge_grounding([(human, human_dir, "human"), (pseudo, img_dir, "pseudo")],
                                   tmp_path / "train" / "merged.json")
    entries = load_grounding_entries(merged, root)
    separate = load_grounding_entries(human, human_dir) + load_grounding_entries(pseudo, img_dir)
    assert [(e.image_path.resolve(), e.caption, e.boxes_xyxy, e.spans) for e in entries] == \
        [(e.image_path.resolve(), e.caption, e.boxes_xyxy, e.spans) for e in separate]
    data = json.loads(merged.read_text())
    assert [m["origin"] for m in data["info"]["merged_from"]] == ["human", "pseudo"]
    assert {img["origin"] for img in data["images"]} == {"human", "pseudo"}
    prov = self_training_provenance(pseudo)["self_training"]
    assert prov["teacher_checkpoint_sha256"] == "ab" * 32 and prov["threshold"] == 0.5
    from bench.util.io import sha256_file

    assert prov["pseudo_labels_sha256"] == sha256_file(pseudo) and prov["extractor"] == "rule"


def test_pseudo_label_boxes_are_coco_xywh_with_the_legacy_width():
    boxes = torch.tensor([[10.0, 20.0, 19.0, 24.5], [0.123, 1.0, 0.123, 1.0]])  # a 10 x 5.5 box, a 1-pixel box
    assert _boxes_xywh(boxes) == [[10.0, 20.0, 10.0, 5.5], [0.12, 1.0, 1.0, 1.0]]
    assert _boxes_xywh(torch.zeros(0, 4)) == []
