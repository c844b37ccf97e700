"""Hand-written answers in each family's format -> boxes in original pixels computed by hand; malformed
parts are counted, never raised."""

from __future__ import annotations

import pytest

from bench.models.generative import florence2, kosmos2, paligemma, qwen2_5_vl, qwen3_vl, qwen_common
from bench.models.generative.answers import AnswerCounts, View, match_labels


# ------------------------------------------------------------------ Florence-2: x first, 1000 bins, bin centre, int
# On a 2000 x 1000 image a bin b is x = int((b + 0.5) * 2) = 2b + 1 and y = int(b + 0.5) = b.
def test_florence2_boxes_in_pixels():
    text = "circle<loc_10><loc_20><loc_30><loc_40>square<loc_0><loc_999><loc_500><loc_999><loc_1><loc_2><loc_3><loc_4>"
    parse = florence2.parse(text, 2000, 1000)
    assert parse.unparseable == 0
    assert [(o.label, o.box) for o in parse.objects] == [
        ("circle", (21.0, 20.0, 61.0, 40.0)),
        ("square", (1.0, 999.0, 1001.0, 999.0)),
        ("square", (3.0, 2.0, 7.0, 4.0)),  # a label owns every group of four after it
    ]
    circle = parse.objects[0]
    assert text[circle.label_span[0]:circle.label_span[1]] == "circle"
    assert text[circle.box_span[0]:circle.box_span[1]] == "<loc_10><loc_20><loc_30><loc_40>"


def test_florence2_truncation_gives_x_int_of_bin_centre():
    # 640 wide: bin 100 -> (100.5 * 0.64) = 64.32 -> 64; 480 high: bin 200 -> 96.24 -> 96
    [obj] = florence2.parse("red circle<loc_100><loc_200><loc_300><loc_400>", 640, 480).objects
    assert obj.box == (64.0, 96.0, 192.0, 192.0)


@pytest.mark.parametrize("text, boxes, unparseable", [
    ("", 0, 0),
    ("</s><pad>", 0, 0),
    ("circle<loc_10><loc_20><loc_30>", 0, 1),  # a box cut short
    ("circle<loc_10><loc_20><loc_30><loc_40><loc_50>", 1, 1),  # a fifth loc
    ("circle<loc_10><loc_20><loc_30><loc_1000>", 0, 1),  # bin past 999
    ("<loc_10><loc_20><loc_30><loc_40>", 0, 1),  # no label
    ("circle<loc_10><loc_20><loc_30><loc_40>squa", 1, 1),  # truncated text after a box
    ("<s>circle<od><loc_10><loc_20><loc_30><loc_40></s>", 1, 0),  # other tags ignored
    ("I see a circle at the top left.", 0, 1),  # prose, no box
    ("circle<loc_x><loc_1><loc_2><loc_3><loc_4>", 1, 0),  # a broken tag is dropped, the box stands
    ("circle<poly><loc_1><loc_2><loc_3><loc_4><loc_5><loc_6></poly>", 0, 1),  # a polygon is not a box
    ("circle<poly><loc_1><loc_2><sep><loc_3><loc_4></poly>square<loc_1><loc_2><loc_3><loc_4>", 1, 1),
    ("circle<poly><loc_1><loc_2><loc_3>", 0, 1),  # a polygon cut short
])
def test_florence2_malformed(text, boxes, unparseable):
    parse = florence2.parse(text, 100, 100)
    assert (len(parse.objects), parse.unparseable) == (boxes, unparseable)


def test_florence2_format_round_trip():
    text = florence2.format_answer([("circle", (21.0, 20.0, 61.0, 40.0))], 2000, 1000)
    assert text == "circle<loc_10><loc_20><loc_30><loc_40>"
    assert florence2.parse(text, 2000, 1000).objects[0].box == (21.0, 20.0, 61.0, 40.0)


# ------------------------------------------------------------------ PaliGemma: y first, bin / 1023 * size
# On a 2046 x 1023 image a bin b is x = 2b, y = b.
def test_paligemma_boxes_in_pixels():
    text = "<loc0010><loc0020><loc0030><loc0040> circle ; <loc0000><loc0000><loc1023><loc1023> red square"
    parse = paligemma.parse(text, 2046, 1023)
    assert parse.unparseable == 0
    assert [(o.label, o.box) for o in parse.objects] == [("circle", (40.0, 10.0, 80.0, 30.0)),
                                                         ("red square", (0.0, 0.0, 2046.0, 1023.0))]
    square = parse.objects[1]
    assert text[square.label_span[0]:square.label_span[1]] == "red square"
    assert text[square.box_span[0]:square.box_span[1]] == "<loc0000><loc0000><loc1023><loc1023>"


def test_paligemma_divides_by_1023_not_1024():
    [obj] = paligemma.parse("<loc0341><loc0341><loc0682><loc0682> circle", 300, 600).objects
    assert obj.box == pytest.approx((100.0, 200.0, 200.0, 400.0))  # 341 / 1023 = 1 / 3


@pytest.mark.parametrize("text, boxes, unparseable", [
    ("", 0, 0),
    (" ; ", 0, 0),
    ("<loc0010><loc0020><loc0030> circle", 0, 1),  # three locs
    ("<loc0010><loc0020><loc0030><loc0040>", 0, 1),  # no label
    ("<loc0010><loc0020><loc0030><loc2000> circle", 0, 1),  # bin past 1023
    ("<loc0010><loc0020><loc0030><loc0040> circle ; <loc0010><loc00", 1, 1),  # truncated second object
    ("circle <loc0010><loc0020><loc0030><loc0040>", 0, 1),  # label first: not the format
    ("<loc0010><loc0020><loc0030><loc0040> circle ; no objects here", 1, 1),
])
def test_paligemma_malformed(text, boxes, unparseable):
    parse = paligemma.parse(text, 100, 100)
    assert (len(parse.objects), parse.unparseable) == (boxes, unparseable)


def test_paligemma_format_round_trip():
    text = paligemma.format_answer([("circle", (40.0, 10.0, 80.0, 30.0))], 2046, 1023)
    assert text == "<loc0010><loc0020><loc0030><loc0040> circle"
    assert paligemma.detection_prompt(["circle", "red square"]) == "detect circle ; red square"


# ------------------------------------------------------------------ labels and counts
def test_labels_match_exactly_and_the_rest_is_counted():
    parse = paligemma.parse("<loc0010><loc0020><loc0030><loc0040> circle ; <loc0010><loc0020><loc0030><loc0040> Circle"
                            " ; <loc0010><loc0020><loc0030><loc0040> blob ; <loc0010> x", 100, 100)
    matched, unmatched = match_labels(parse.objects, {"circle": 7, "square": 9})
    assert matched == [(0, 7)] and unmatched == ["Circle", "blob"]
    counts = AnswerCounts()
    counts.add(parse, unmatched)
    assert counts.as_dict() == {"answers": 1, "parsed_boxes": 3, "unparseable": 1, "labels_outside_prompt": 2,
                                "empty_answers": 0, "unmatched_labels": {"Circle": 1, "blob": 1},
                                "unmatched_label_kinds": 2}


# ------------------------------------------------------------------ Kosmos-2: 32 x 32 cells, index = row * 32 + col
# On a 3200 x 320 image a cell is 100 px wide and 10 px high.
def test_kosmos2_boxes_in_pixels():
    text = ("<object><patch_index_0033><patch_index_0098></object>"  # (1,1) -> (2,3): cell centres
            "<phrase> a red star</phrase><object><patch_index_0001><patch_index_0003>"  # one row: whole cells
            "</delimiter_of_multi_objects/><patch_index_0064><patch_index_0064></object>")  # one cell
    parse = kosmos2.parse(text, 3200, 320, "circle")
    assert parse.unparseable == 0
    assert [(o.label, o.box) for o in parse.objects] == [
        ("circle", (150.0, 15.0, 250.0, 35.0)),
        ("a red star", (100.0, 0.0, 400.0, 10.0)),
        ("a red star", (0.0, 20.0, 100.0, 30.0)),
    ]
    assert parse.objects[0].label_span == (0, 0)  # the prompt's phrase: scored by its box tokens
    star = parse.objects[1]
    assert text[star.label_span[0]:star.label_span[1]] == " a red star"


@pytest.mark.parametrize("text, boxes, unparseable", [
    ("", 0, 0),
    ("a picture of things.", 0, 0),  # prose without an object: no detection
    ("<object><patch_index_0033></object>", 0, 1),  # one corner
    ("<object><patch_index_0033><patch_index_0098>", 0, 1),  # never closed
    ("<object><patch_index_0033><patch_index_1024></object>", 0, 1),  # past the grid
    ("<object><patch_index_0033>junk<patch_index_0098></object>", 0, 1),
    ("<object><patch_index_0033><patch_index_0098></delimiter_of_multi_objects/><patch_index_0001></object>", 1, 1),
])
def test_kosmos2_malformed(text, boxes, unparseable):
    parse = kosmos2.parse(text, 100, 100, "circle")
    assert (len(parse.objects), parse.unparseable) == (boxes, unparseable)


def test_kosmos2_equals_transformers_post_processing():
    from transformers.models.kosmos2.processing_kosmos2 import clean_text_and_extract_entities_with_bboxes

    text = ("<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object> by<phrase> a fire"
            "</phrase><object><patch_index_0005><patch_index_0911></object><phrase> it</phrase><object>"
            "<patch_index_0100><patch_index_0120></delimiter_of_multi_objects/><patch_index_0007><patch_index_0007>"
            "</object>")
    _, entities = clean_text_and_extract_entities_with_bboxes(text)
    want = [(name, tuple(v * s for v, s in zip(box, (640, 480, 640, 480)))) for name, _, boxes in entities
            for box in boxes]
    got = [(o.label, o.box) for o in kosmos2.parse(text, 640, 480, None).objects]
    assert got == want and len(got) == 4


def test_florence2_equals_the_processors_post_processing(tiny):
    """The adapter's pixels are the processor's own (post_process_generation loads with the tiny model)."""
    import random

    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny("florence-2"))
    rng = random.Random(0)
    for width, height in ((640, 480), (333, 1001), (128, 128)):
        objects = [(rng.choice(["circle", "red square"]), sorted(rng.randrange(1000) for _ in range(2))
                    + sorted(rng.randrange(1000) for _ in range(2))) for _ in range(5)]
        text = "".join(label + "".join(f"<loc_{b}>" for b in (x1, y1, x2, y2)) for label, (x1, x2, y1, y2) in objects)
        task = "<OPEN_VOCABULARY_DETECTION>"
        want = processor.post_process_generation(text, task=task, image_size=(width, height))[task]
        got = florence2.parse(text, width, height).objects
        assert [list(o.box) for o in got] == want["bboxes"] and [o.label for o in got] == want["bboxes_labels"]


# ------------------------------------------------------------------ Qwen2.5-VL: pixels of the resized input
def test_qwen2_5_vl_boxes_scale_from_the_resized_input():
    text = ('```json\n[\n\t{"bbox_2d": [28, 56, 280, 140], "label": "circle"},\n\t'
            '{"label": "red square", "bbox_2d": [0, 0, 560, 280.5]}\n]\n```')
    # original 1000 x 500 seen as 560 x 280: x * 1000 / 560, y * 500 / 280
    parse = qwen2_5_vl.parse_answer(text, View(1000, 500, 560, 280))
    assert parse.unparseable == 0
    assert [(o.label, o.box) for o in parse.objects] == [
        ("circle", pytest.approx((50.0, 100.0, 500.0, 250.0))),
        ("red square", pytest.approx((0.0, 0.0, 1000.0, 500.0 * 280.5 / 280))),
    ]
    circle = parse.objects[0]
    assert text[circle.label_span[0]:circle.label_span[1]] == "circle"
    assert text[circle.box_span[0]:circle.box_span[1]] == '"bbox_2d": [28, 56, 280, 140]'


# ------------------------------------------------------------------ Qwen3-VL: relative 0-1000
def test_qwen3_vl_boxes_are_thousandths_of_the_original():
    text = '[{"bbox_2d": [100, 200, 1000, 500], "label": "circle"}]'
    [obj] = qwen3_vl.parse_answer(text, View(640, 480, 640, 480)).objects
    assert obj.box == pytest.approx((64.0, 96.0, 640.0, 240.0))
    # the resized input does not matter: the fractions are of the whole image
    assert qwen3_vl.parse_answer(text, View(640, 480, 96, 32)).objects[0].box == obj.box


@pytest.mark.parametrize("text, boxes, unparseable", [
    ("", 0, 0),
    ("There is nothing to detect.", 0, 0),
    ('{"bbox_2d": [1, 2, 3], "label": "circle"}', 0, 1),
    ('{"bbox_2d": [1, 2, 3, "4"], "label": "circle"}', 0, 1),
    ('{"bbox_2d": [1, 2, 3, 4], "label": 7}', 0, 1),
    ('{"bbox_2d": [1, 2, 3, 4]}', 0, 1),
    ('{"bbox_2d": [1, 2, 3, 4], "label": "circle",}', 0, 1),  # not JSON
    ('[{"bbox_2d": [1, 2, 3, 4], "label": "circle"}, {"bbox_2d": [5, 6', 1, 1),  # truncated
    ('{"point_2d": [1, 2], "label": "circle"}', 0, 1),
    ('```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "circle"}]\n``` and some words', 1, 0),
])
def test_qwen_malformed(text, boxes, unparseable):
    for family in (qwen2_5_vl, qwen3_vl):
        parse = family.parse_answer(text, View(100, 100, 100, 100))
        assert (len(parse.objects), parse.unparseable) == (boxes, unparseable)


@pytest.mark.parametrize("height, width", [(128, 128), (480, 640), (1001, 333), (37, 2000), (3000, 4000)])
def test_smart_resize_equals_the_image_processor(height, width):
    """The resize arithmetic written here gives the size transformers' Qwen2-VL image processor (the PIL
    backend that loads here) resizes to: its image_grid_thw times the patch size."""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as transformers_resize

    for patch in (14, 16):
        factor, lo, hi = 2 * patch, 32 * 32, 64 * 64 * 64
        processor = Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, size={"shortest_edge": lo,
                                                                                   "longest_edge": hi})
        grid = processor(images=[Image.new("RGB", (width, height))], return_tensors="pt")["image_grid_thw"][0]
        seen = (int(grid[1]) * patch, int(grid[2]) * patch)
        assert qwen_common.smart_resize(height, width, factor, lo, hi) == seen
        assert transformers_resize(height, width, factor, lo, hi) == seen


def test_qwen_chat_layout_and_image_tokens(tiny):
    """The prompt the adapter builds: one image placeholder per merged patch, marked in mm_token_type_ids;
    the model accepts it (its forward checks that image tokens and features agree)."""
    import torch
    from PIL import Image

    from bench.models import build_adapter

    adapter = build_adapter(f"hf:{tiny('qwen2.5-vl')}")
    inputs, seen = adapter.inputs(Image.new("RGB", (128, 96)), qwen2_5_vl.detection_prompt(["circle"]))
    assert seen == (140, 84)  # 128 x 96 -> multiples of 28
    assert int(inputs["mm_token_type_ids"].sum()) == (140 // 28) * (84 // 28)
    text = adapter.loaded.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                           "<|vision_start|><|image_pad|>")
    assert text.endswith('"label": "<category>"}, all of them in one JSON list.<|im_end|>\n<|im_start|>assistant\n')
    with torch.no_grad():
        assert adapter.loaded.model(**inputs).logits.shape[1] == inputs["input_ids"].shape[1]
