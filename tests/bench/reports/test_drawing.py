"""Drawn detections: labels inside the canvas, apart from each other and off the other boxes where possible."""

import itertools

import numpy as np
from PIL import Image

from bench.reports.drawing import _overlap, draw_detections, place_labels


def _inside(label, width, height):
    return 0 <= label[0] and 0 <= label[1] and label[2] <= width and label[3] <= height


def test_labels_stay_inside_the_canvas_at_its_edges():
    boxes = [(0, 0, 30, 20), (100, 110, 128, 128), (90, 0, 128, 40)]  # touching the top, bottom and right edges
    labels = place_labels(boxes, [(60, 14)] * 3, 128, 128)
    assert all(_inside(lab, 128, 128) for lab in labels)
    assert all(_overlap(a, b) == 0 for a, b in itertools.combinations(labels, 2))


def test_labels_of_neighbouring_boxes_do_not_overlap_or_cover_the_other_box():
    boxes = [(40, 40, 80, 80), (82, 40, 122, 80), (40, 82, 80, 122)]  # a tight cluster in a 512 canvas
    labels = place_labels(boxes, [(70, 16)] * 3, 512, 512)
    assert all(_overlap(a, b) == 0 for a, b in itertools.combinations(labels, 2))
    for i, lab in enumerate(labels):
        assert all(_overlap(lab, b) == 0 for j, b in enumerate(boxes) if j != i)
    assert labels[0] == (40, 24, 110, 40)  # first choice: just above its own box, left-aligned


def test_a_small_image_is_drawn_upscaled_with_the_boxes_scaled(tmp_path):
    image = Image.fromarray(np.full((128, 128, 3), 255, np.uint8))
    dets = [{"box_xyxy": [10.0, 10.0, 40.0, 40.0], "score": 0.9, "label": 0, "phrase": "red square"}]
    assert draw_detections(image, dets, tmp_path / "d.png") == 4.0
    drawn = np.asarray(Image.open(tmp_path / "d.png"))
    assert drawn.shape == (512, 512, 3)
    assert (drawn[100:120, 41] != 255).all()  # the box's left edge at 10 px x 4
    assert (drawn[300:, 300:] == 255).all()  # nothing drawn far from the detection
