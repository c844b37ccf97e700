"""bench.tasks.prompts: task prompt sets -> glip prompt chunks -> data-set category ids, and back."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.data.types import DetectionDataset
from bench.tasks.prompts import task_prompt_chunks
from bench.tasks.registry import _validate, load_registry
from bench.testing.formats import coco_dict, make_detection_task_data, write_coco_split
from bench.util.errors import UserError
from glip.language import build_wordpiece_tokenizer

WORDS = ["red", "cat", "big", "dog", "traffic", "light", "hair", "drier", "fish", "penguin", "which", "is",
         "black", "and", "white", "there", "are", "some", "holes", "on", "the", "road", "a", "package", "porch"]
TOKENIZER = build_wordpiece_tokenizer(WORDS)


def _task(chunk_size=None, classes=None):
    return _validate({
        "name": "toy", "version": 1, "description": "d", "source": "s", "format": "coco", "root": "toy",
        "splits": {"val": {"ann": "a.json", "images": "i"}}, "eval_split": "val", "classes": classes,
        "prompt_sets": {"plain": {}}, "metric": "coco_bbox", "chunk_size": chunk_size,
    }, Path("toy.yaml"))


def _dataset(cat_ids, names):
    cats = sorted(({"id": i, "name": n, "prompt_name": n} for i, n in zip(cat_ids, names)), key=lambda c: c["id"])
    return DetectionDataset("toy", "val", Path("a.json"), [], cats, {}, {"images": [], "annotations": [], "categories": cats})


name_st = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(1, 5000), name_st), min_size=1, max_size=40, unique_by=lambda t: t[0]),
    chunk_size=st.one_of(st.none(), st.integers(1, 12)),
    max_len=st.integers(12, 64),
)
def test_chunking_keeps_every_class_id(data, chunk_size, max_len):
    ids, names = [d[0] for d in data], [d[1] for d in data]
    ds = _dataset(ids, names)
    chunks = task_prompt_chunks(_task(chunk_size), ds, TOKENIZER, "plain", max_len=max_len)
    flat = [i for _, cids in chunks for i in cids]
    assert flat == sorted(ids)  # every class once, in category-id order
    by_id = dict(zip(ids, names))
    for chunk, cids in chunks:
        assert chunk.positive_map.shape == (len(cids), max_len)
        assert chunk_size is None or len(cids) <= chunk_size
        for (span,), cid in zip(chunk.spans, cids):
            assert chunk.caption[span[0]:span[1]] == by_id[cid]


def test_lvis_style_chunks_of_40():
    ids = list(range(1, 101))
    ds = _dataset(ids, ["cat"] * 100)
    chunks = task_prompt_chunks(_task(chunk_size=40), ds, TOKENIZER)
    assert [len(c) for _, c in chunks] == [40, 40, 20]
    assert chunks[1][1][0] == 41


def test_official_aquarium_caption(tmp_path):
    reg = load_registry()
    task = reg.get("odinw-aquarium")
    make_detection_task_data(task, tmp_path, fewshot=None)
    ds = task.load("val", tmp_path)
    [(chunk, cids)] = task_prompt_chunks(task, ds, TOKENIZER, "official")
    assert chunk.caption == (" fish. jellyfish. penguin , which is black and white. puffin with orange beaks . "
                             "shark. starfish. stingray which is flat and round")
    assert chunk.spans[0] == [(1, 5)] and cids == [1, 2, 3, 4, 5, 6, 7]
    [(plain, _)] = task_prompt_chunks(task, ds, TOKENIZER, "plain")
    assert plain.caption == "fish. jellyfish. penguin. puffin. shark. starfish. stingray"
    [(pot, _)] = task_prompt_chunks(reg.get("odinw-pothole"), _dataset([1], ["pothole"]), TOKENIZER, "official")
    assert pot.caption == "there are some holes on the road" and pot.spans == [[(15, 20)]]


def test_coco_names_from_file_are_cleaned_and_keep_their_ids(tmp_path):
    task = load_registry().get("coco")
    write_coco_split(task, "val", tmp_path, coco_dict([(90, "hair_drier"), (10, "traffic light")], n_images=1))
    [(chunk, cids)] = task_prompt_chunks(task, task.load(data_root=tmp_path), TOKENIZER)
    assert chunk.caption == "traffic light. hair drier" and cids == [10, 90]


def test_grounding_task_has_no_prompt_chunks():
    with pytest.raises(UserError, match="grounding task"):
        task_prompt_chunks(load_registry().get("flickr30k-val"), None, TOKENIZER)
