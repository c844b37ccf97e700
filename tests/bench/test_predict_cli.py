"""`glip-bench predict` on glip-tiny: JSON boxes in the image's pixels, a PNG with the boxes drawn, and
clear errors for bad input."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from glip.checkpoint import save_weights
from glip.config import get_preset
from glip.model import GLIP


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    m = GLIP(get_preset("glip-tiny"))
    with torch.no_grad():
        m.head.bias0.fill_(4.0)  # confident everywhere: guarantees detections from random weights
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(m, path)
    return path


@pytest.fixture
def img_path(tmp_path):
    arr = np.full((60, 90, 3), 200, np.uint8)
    arr[10:30, 20:50] = (255, 0, 0)
    path = tmp_path / "img.png"
    Image.fromarray(arr).convert("L").save(path)  # grayscale on purpose: converted, not rejected
    return path


def test_predict_writes_json_and_png(tmp_path, weights, img_path):
    out_json, out_png = tmp_path / "d.json", tmp_path / "d.png"
    rc = main(["predict", "--model", "glip-tiny", "--checkpoint", str(weights), "--image", str(img_path),
               "--prompt", "red square. blue circle", "--threshold", "0.1", "--out-json", str(out_json),
               "--out-png", str(out_png)])
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert data["phrases"] == ["red square", "blue circle"] and (data["width"], data["height"]) == (90, 60)
    dets = data["detections"]
    assert dets and all(d["score"] >= 0.1 for d in dets)
    assert [d["score"] for d in dets] == sorted((d["score"] for d in dets), reverse=True)
    for d in dets:
        x1, y1, x2, y2 = d["box_xyxy"]
        assert 0 <= x1 <= x2 <= 90 and 0 <= y1 <= y2 <= 60
        assert d["phrase"] == data["phrases"][d["label"]]
    drawn = Image.open(out_png)
    assert drawn.size == (768, 512)  # upscaled to a short side of 512 px, aspect kept
    plain = np.asarray(Image.open(img_path).convert("RGB").resize(drawn.size, Image.Resampling.LANCZOS))
    assert (np.asarray(drawn) != plain).any()


def test_predict_classes_to_stdout(capsys, weights, img_path):
    rc = main(["predict", "--model", "glip-tiny", "--checkpoint", str(weights), "--image", str(img_path),
               "--classes", "red square,blue circle,cat", "--threshold", "0.0"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["phrases"] == ["red square", "blue circle", "cat"]
    assert {d["label"] for d in data["detections"]} <= {0, 1, 2}


@pytest.mark.parametrize("extra,message", [
    (["--prompt", " . "], "--prompt is empty"),
    (["--classes", "cat,,dog"], "empty class name"),
    (["--prompt", "cat", "--model", "glip-tinny"], "Did you mean 'glip-tiny'"),
    (["--prompt", "cat", "--device", "cuda"], "cuda"),
])
def test_bad_input_is_a_clear_error(caplog, weights, img_path, extra, message):
    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    args = ["predict", "--model", "glip-tiny", "--checkpoint", str(weights), "--image", str(img_path)]
    if "--model" in extra:
        args = args[:1] + args[3:]
    with caplog.at_level(logging.ERROR):
        assert main(args + extra) == 2
    assert message in caplog.text


def test_missing_image_and_wrong_preset_checkpoint(caplog, tmp_path, weights, img_path):
    with caplog.at_level(logging.ERROR):
        assert main(["predict", "--model", "glip-tiny", "--image", str(tmp_path / "no.png"), "--prompt", "cat"]) == 2
        assert "image not found" in caplog.text
        assert main(["predict", "--model", "glip-synth", "--checkpoint", str(weights), "--image", str(img_path),
                     "--prompt", "cat"]) == 2
        assert "saved from preset 'glip-tiny'" in caplog.text
        assert main(["predict", "--model", "glip-t", "--image", str(img_path), "--prompt", "cat"]) == 2
        assert "bert-base-uncased" in caplog.text


def test_empty_phrases_and_unknown_words_are_warned_about(caplog, weights, img_path, tmp_path):
    with caplog.at_level(logging.WARNING):
        assert main(["predict", "--model", "glip-tiny", "--checkpoint", str(weights), "--image", str(img_path),
                     "--prompt", "circle. . star €", "--out-json", str(tmp_path / "d.json")]) == 0
    assert "1 empty phrase(s) between '.'s dropped; the phrases are ['circle', 'star €']" in caplog.text
    assert "encoded as [UNK] (the model cannot tell them apart): '€'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["predict", "--model", "glip-tiny", "--checkpoint", str(weights), "--image", str(img_path),
                     "--prompt", "circle. star.", "--out-json", str(tmp_path / "d.json")]) == 0
    assert "empty phrase" not in caplog.text and "[UNK]" not in caplog.text  # a closing '.' is no empty phrase
