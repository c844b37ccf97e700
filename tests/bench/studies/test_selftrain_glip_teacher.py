"""End to end with a real glip-tiny teacher (random weights from a saved checkpoint) on two tiny images:
the kept pseudo-boxes are exactly the model's own detections at or above the threshold."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from bench.data.training import load_grounding_entries
from bench.studies.selftrain.phrases import extract_rule
from bench.studies.selftrain.pseudo_label import load_teacher, pseudo_label

CAPTIONS = ["a red square left of a blue circle", "two green stars and the small red circle"]


def _images(tmp_path):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        arr = rng.integers(0, 255, size=(48 + 8 * i, 64, 3), dtype=np.uint8)
        Image.fromarray(arr).save(img_dir / f"{i}.png")
    (tmp_path / "captions.json").write_text(json.dumps(
        [{"file_name": f"{i}.png", "caption": c} for i, c in enumerate(CAPTIONS)]))
    return img_dir, tmp_path / "captions.json"


def test_glip_tiny_teacher_end_to_end(tmp_path):
    from bench.cli import main as cli_main
    from bench.runs.train import save_adapter
    from glip.config import get_preset
    from glip.model import GLIP
    from glip.prompts import positive_map

    img_dir, captions = _images(tmp_path)
    torch.manual_seed(0)
    ckpt = save_adapter(GLIP(get_preset("glip-tiny")), tmp_path / "teacher.safetensors")

    # the command line: runs, writes a loadable json, records the teacher checkpoint hash
    out_cli = tmp_path / "cli.json"
    rc = cli_main(["pseudo-label", "--model", "glip-tiny", "--checkpoint", str(ckpt), "--captions", str(captions),
                   "--images", str(img_dir), "--out", str(out_cli), "--threshold", "0.0", "--batch-size", "2"])
    assert rc == 0
    info = json.loads(out_cli.read_text())["info"]
    from bench.util.io import sha256_file

    assert info["teacher"]["checkpoint_sha256"] == sha256_file(ckpt) and info["extractor"] == "rule"

    # the library path: kept boxes == the teacher's detections with score >= threshold
    teacher, tinfo = load_teacher("glip-tiny", ckpt)
    teacher.postprocessor.pre_nms_thresh = 0.0  # random weights score low; let every candidate through
    images = [Image.open(img_dir / f"{i}.png").convert("RGB") for i in range(2)]
    maps = [positive_map(teacher.tokenizer, c, [[(p.start, p.end)] for p in extract_rule(c)]) for c in CAPTIONS]
    dets = teacher.detect(teacher.preprocess(images), CAPTIONS, maps)
    scores = torch.cat([d.scores for d in dets])
    assert len(scores) > 4
    threshold = float(scores.median())
    out = tmp_path / "pseudo.json"
    summary = pseudo_label(teacher, captions, img_dir, out, threshold=threshold, batch_size=2, teacher_info=tinfo)
    data = json.loads(out.read_text())
    for k, d in enumerate(dets):
        keep = d.scores >= threshold
        anns = [a for a in data["annotations"] if a["image_id"] == k + 1]
        assert len(anns) == int(keep.sum())
        want = sorted(zip(d.scores[keep].tolist(), d.boxes_xyxy[keep].tolist()), key=lambda t: -t[0])
        for a, (s, (x1, y1, x2, y2)) in zip(sorted(anns, key=lambda a: -a["score"]), want):
            assert abs(a["score"] - s) < 1e-4
            assert np.allclose(a["bbox"], [x1, y1, x2 - x1 + 1, y2 - y1 + 1], atol=0.01)
    assert summary["boxes"] == int((scores >= threshold).sum()) and summary["boxes_below_threshold"] > 0
    entries = load_grounding_entries(out, img_dir)
    assert sum(len(e.boxes_xyxy) for e in entries) == summary["boxes"]
