"""Flickr30K: MDETR final_flickr_separateGT json + Flickr30K Entities XML/TXT through the registry.
Expected values are worked out by hand from the fixture's sentences and boxes."""

from __future__ import annotations

import json
import shutil

import pytest

from bench.data import GroundingDataset, parse_annotation_xml, parse_sentences
from bench.tasks.registry import load_registry
from bench.testing.formats import FLICKR_SENTENCES, make_flickr_task_data
from bench.util.errors import UserError


@pytest.fixture(scope="module")
def reg():
    return load_registry()


def test_parse_sentences_by_hand(tmp_path):
    p = tmp_path / "101.txt"
    p.write_text("\n".join(FLICKR_SENTENCES[101]) + "\n")
    sents = parse_sentences(p)
    assert len(sents) == 3
    s0 = sents[0]
    assert s0["sentence"] == "A man in a red hat walks a dog ."
    assert [(q["phrase"], q["phrase_id"], q["types"], q["first_word_index"], q["span"]) for q in s0["phrases"]] == [
        ("A man", "1", ["people"], 0, (0, 5)),
        ("a red hat", "2", ["clothing"], 3, (9, 18)),
        ("a dog", "3", ["animals", "other"], 7, (25, 30)),
    ]
    assert sents[1]["sentence"] == "The street is empty ." and sents[1]["phrases"][0]["phrase_id"] == "4"
    p.write_text("[/EN#5/people A woman runs .\n")
    with pytest.raises(UserError, match="never closed"):
        parse_sentences(p)


def test_parse_annotation_xml_by_hand(reg, tmp_path):
    task = reg.get("flickr30k-val")
    make_flickr_task_data(task, tmp_path)
    ann = tmp_path / "flickr30k/flickr30k/Annotations"
    x = parse_annotation_xml(ann / "101.xml")
    assert (x["width"], x["height"]) == (32, 24)
    assert x["boxes"] == {"1": [[2, 3, 10, 20]], "2": [[4, 1, 8, 5]], "3": [[12, 14, 20, 22], [21, 14, 25, 22]]}
    assert x["scene"] == ["4"] and x["nobox"] == []
    y = parse_annotation_xml(ann / "102.xml")
    assert y["boxes"] == {"7": [[1, 1, 15, 15]], "9": [[1, 1, 15, 15]]} and y["nobox"] == ["8"]
    (ann / "bad.xml").write_text("<annotation><size>")
    with pytest.raises(UserError, match="malformed XML"):
        parse_annotation_xml(ann / "bad.xml")


def test_flickr_val_loads_and_builds_the_recall_ground_truth(reg, tmp_path):
    task = reg.get("flickr30k-val")
    make_flickr_task_data(task, tmp_path)
    assert task.data_present(tmp_path)
    ds = task.load(data_root=tmp_path)
    assert isinstance(ds, GroundingDataset)
    # entry 1 ("The street is empty .") has only a scene phrase: not evaluated, as the official evaluator
    assert [s.id for s in ds.samples] == [0, 2, 3]
    assert sorted(i.id for i in ds.images) == [101, 102]
    s0 = ds.sample(0)
    assert s0.caption == "A man in a red hat walks a dog ." and (s0.original_image_id, s0.sentence_id) == (101, 0)
    assert [p.spans for p in s0.phrases] == [[(0, 5)], [(9, 18)], [(25, 30)]]
    assert s0.image.path == tmp_path / "flickr30k/flickr30k_images/val/101.jpg"
    assert ds.load_image(0).size == (32, 24)
    gt = ds.entities
    assert gt[0] == {"image_id": 0, "phrases": [
        {"phrase_id": "1", "boxes": [[2, 3, 10, 20]], "types": ["people"]},
        {"phrase_id": "2", "boxes": [[4, 1, 8, 5]], "types": ["clothing"]},
        {"phrase_id": "3", "boxes": [[12, 14, 20, 22], [21, 14, 25, 22]], "types": ["animals", "other"]},
    ]}
    # sentence 2 reorders the same entities: phrase order follows the sentence
    assert [p["phrase_id"] for p in gt[1]["phrases"]] == ["1", "3", "2"]
    # image 102: "a ball" has no box (nobndbox) and is dropped; the box shared by entities 7 and 9 counts for 7
    assert gt[2] == {"image_id": 3, "phrases": [{"phrase_id": "7", "boxes": [[1, 1, 15, 15]], "types": ["people"]}]}
    assert [s.id for s in ds.subset([3]).samples] == [3]


def _edit_json(task, tmp_path, fn):
    path = task.ann_path("val", tmp_path)
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "corrupt, expect",
    [
        (lambda d: d["images"][0].__setitem__("caption", "A man in a blue hat walks a dog ."), "does not match the Flickr30K"),
        (lambda d: d["images"][0]["tokens_positive_eval"].pop(), "does not match the Flickr30K"),
        (lambda d: d["images"][0].__setitem__("tokens_positive_eval", [[[0, 4]], [[9, 18]], [[25, 30]]]), "phrase spans"),
        (lambda d: d["images"][2].__setitem__("sentence_id", 7), "has sentence_id 7"),
        (lambda d: d["images"][3].__setitem__("id", 0), r"duplicate entry ids \[0\]"),
        (lambda d: d["images"][0].pop("tokens_positive_eval"), "has no 'tokens_positive_eval'"),
        (lambda d: d["annotations"][0]["bbox"].__setitem__(3, -4), "negative width/height"),
        (lambda d: d["annotations"][0].__setitem__("image_id", 77), "image_id 77"),
    ],
)
def test_bad_flickr_data(reg, tmp_path, corrupt, expect):
    task = reg.get("flickr30k-val")
    make_flickr_task_data(task, tmp_path)
    _edit_json(task, tmp_path, corrupt)
    with pytest.raises(UserError, match=expect):
        task.load(data_root=tmp_path)


def test_missing_flickr_files_name_path_and_source(reg, tmp_path):
    task = reg.get("flickr30k-test")
    with pytest.raises(UserError) as e:
        task.load(data_root=tmp_path)
    assert str(tmp_path / "mdetr_annotations/final_flickr_separateGT_test.json") in str(e.value)
    assert "zenodo" in str(e.value)
    make_flickr_task_data(task, tmp_path)
    shutil.rmtree(tmp_path / "flickr30k/flickr30k/Sentences")
    assert not task.data_present(tmp_path)
    with pytest.raises(UserError, match="Sentences directory not found: .*flickr30k/flickr30k/Sentences"):
        task.load(data_root=tmp_path)
