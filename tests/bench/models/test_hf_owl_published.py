"""OWL-ViT / OWLv2 under `--set protocol=published`: class queries ensembled over prompt templates as the
authors' evaluator does (scenic owl_vit evaluator.py: mean of the class head's logits over the templates),
top 300 pairs per image, recorded with their sources and shown as the variant."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.models.base import DetectSettings, detect_dicts
from bench.models.families.owl import CLIP_BEST_PROMPT_TEMPLATES
from bench.models.hf import build_hf_adapter, ensemble
from bench.models.hf.prompts import TextChunk
from bench.reports.load import variant_label
from bench.results import store
from bench.results.records import RunSpec
from bench.synthetic.concepts import BASE_SHAPES
from bench.testing.hf import OneThread, make_data, run_cli, save_tiny

CHUNKS = [(TextChunk(("red circle", "blue square", "star")), [1, 2, 3]), (TextChunk(("triangle", "ring")), [4, 5])]


class Images:
    """Three random images of different sizes (OWLv2 pads each to a square of its own)."""

    image_ids = [1, 2, 3]

    def load_image(self, image_id: int) -> Image.Image:
        pixels = np.random.default_rng(image_id).integers(0, 255, (50 + 10 * image_id, 80, 3), dtype=np.uint8)
        return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hf-data"))


def by_rank(preds):
    return sorted(preds, key=lambda p: (p["image_id"], -p["score"], p["category_id"], p["bbox"]))


@pytest.mark.parametrize("family", ["owlv2", "owlvit"])
def test_one_bare_template_gives_the_task_paths_detections(family, tmp_path):
    """With the one template "{}", the published path (text embedded once, image once, class head per chunk)
    is the model's own forward: the same logits and boxes, and so the same detections, batch 2 included."""
    adapter = build_hf_adapter(f"hf:{save_tiny(family, tmp_path / family)}")
    settings = DetectSettings(per_chunk_cap=100, per_image_cap=100, batch_size=2)
    with OneThread():
        task = detect_dicts(adapter, Images(), CHUNKS, settings)
        adapter.prompt_templates = ("{}",)  # the task's caps, the ensembling path
        published = detect_dicts(adapter, Images(), CHUNKS, settings)
    assert len(task) == len(published) == 3 * 16 * 5  # 16 patches x 5 classes per image, all under the cap
    for a, b in zip(by_rank(task), by_rank(published)):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)
        assert a["bbox"] == pytest.approx(b["bbox"], abs=1e-4)

    model, tokenizer = adapter.loaded.model, adapter.loaded.tokenizer
    pixels = adapter._pixel_inputs([Images().load_image(1)])["pixel_values"]
    tokens = tokenizer(["red circle", "star"], padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        forward = model(pixel_values=pixels, **tokens)
        manual = ensemble.classify(model, ensemble.embed_images(model, pixels), ensemble.text_queries(model, tokens, 1))
    torch.testing.assert_close(manual.logits, forward.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(manual.pred_boxes, forward.pred_boxes, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["owlv2", "owlvit"])
def test_several_templates_average_the_class_heads_logits(family, tmp_path):
    """Three templates: each detection's score is sigmoid of the mean, over the templates, of the class head's
    logits for that template's text embedding, computed here from the plain text model; averaging the
    embeddings first would give other scores."""
    adapter = build_hf_adapter(f"hf:{save_tiny(family, tmp_path / family)}")
    adapter.set_protocol("published")
    adapter.prompt_templates = ("{}", "a photo of a {}.", "Art of the {}!")
    texts = [["red circle", "star"], ["a photo of a red circle", "a photo of a star"],
             ["art of the red circle", "art of the star"]]  # canonical: lower case, punctuation dropped
    chunk = [(TextChunk(("red circle", "star")), [7, 9])]
    with OneThread():
        preds = detect_dicts(adapter, Images(), chunk, DetectSettings(per_chunk_cap=1000, per_image_cap=1000))
    model, tokenizer = adapter.loaded.model, adapter.loaded.tokenizer
    pixels = adapter._pixel_inputs([Images().load_image(2)])["pixel_values"]
    with torch.no_grad():
        feature_map = model.image_embedder(pixel_values=pixels)[0]
        feats = feature_map.reshape(1, -1, feature_map.shape[-1])
        embeds = []
        for template_texts in texts:
            tok = tokenizer(template_texts, padding="max_length", max_length=16, return_tensors="pt")
            pooled = model.base_model.text_model(**tok).pooler_output
            embeds.append(model.base_model.text_projection(pooled))
        logits = torch.stack([model.class_predictor(feats, e[None])[0][0] for e in embeds]).mean(0)  # [P, 2]
        of_mean_embedding = model.class_predictor(feats, torch.stack(embeds).mean(0)[None])[0][0]
        queries = next(iter(adapter._queries_cache.values()))  # the run's cached [T, C, d] queries
        ours = ensemble.classify(model, ensemble.embed_images(model, pixels), queries).logits[0]
    torch.testing.assert_close(ours, logits, rtol=0, atol=1e-5)
    expected = sorted(logits.sigmoid().flatten().tolist(), reverse=True)
    got = [p["score"] for p in by_rank(preds) if p["image_id"] == 2]
    assert got == pytest.approx(expected, abs=1e-6)
    assert not torch.allclose(of_mean_embedding.sigmoid(), logits.sigmoid(), atol=1e-4)
    best = max(range(len(expected)), key=lambda i: logits.flatten()[i])
    assert [p for p in by_rank(preds) if p["image_id"] == 2][0]["category_id"] == [7, 9][best % 2]


def test_canonical_queries_follow_the_authors_rules():
    assert ensemble.canonical("Itap of a Baseball_Glove (toy).") == "itap of a baseball glove toy"
    assert ensemble.canonical("  a--b   c, d ") == "a-b c d"
    assert ensemble.templated(["x", "y"], ["{}", "a {}."]) == ["x", "y", "a x", "a y"]


def test_published_owlv2_run_records_the_ensembling_and_embeds_text_once(data_root, tmp_path, monkeypatch):
    """`glip-bench run --model hf:DIR --set protocol=published`: rc 0; the record names the 7 templates, the
    ensembling rule, the cap, the threshold and their sources; the leaderboard's variant column says
    protocol=published beside the task protocol's row;
    every image keeps all its (patch, class) pairs under the cap of 300; each class's text is embedded once
    per run, not once per image."""
    from transformers import Owlv2Model

    from bench.cli import main

    calls = []
    original = Owlv2Model.get_text_features

    def counted(self, *args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Owlv2Model, "get_text_features", counted)
    model_dir = save_tiny("owlv2", tmp_path / "owlv2")
    results = tmp_path / "results"  # one result set: the leaderboard puts both rows in one table
    with OneThread():
        rc_task, [task] = run_cli(model_dir, data_root, results)
        calls.clear()
        rc, records = run_cli(model_dir, data_root, results, "--set", "protocol=published")
    assert rc_task == rc == 0
    [record] = [r for r in records if r["provenance"]["model_limits"]["protocol"] == "published"]
    runs = {json.loads((d / "record.json").read_text())["provenance"]["model_limits"]["protocol"]: d
            for d in (results / "runs").iterdir()}
    limits = record["provenance"]["model_limits"]
    published = limits["published_settings"]
    assert limits["protocol"] == "published" and task["provenance"]["model_limits"]["published_settings"] is None
    assert published["prompt_template_set"] == "CLIP_BEST_PROMPT_TEMPLATES"
    assert published["prompt_templates"] == CLIP_BEST_PROMPT_TEMPLATES and published["prompt_template_count"] == 7
    assert published["detections_per_image"] == 300 and published["score_threshold"] == 0.0
    assert "mean over the templates" in published["ensembling"]
    assert "evaluator.py get_predict_fn" in published["source"]["ensembling"]
    assert "label_ops.py CLIP_BEST_PROMPT_TEMPLATES" in published["source"]["templates"]
    assert "protocol=published" in variant_label(RunSpec.from_dict(record["spec"]))
    assert main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb"), "--no-reference"]) == 0
    rows = pd.read_csv(tmp_path / "lb" / "leaderboard.csv")
    assert sorted(rows.loc[rows["kind"] == "run here", "variant"]) == ["default", "protocol=published"]

    classes = len(BASE_SHAPES)  # synth-shapes' classes, one chunk
    num_images = len({p["image_id"] for p in store.read_predictions(runs["task"])})
    assert num_images > 1 and calls == [7 * classes]  # one text pass: 7 templates x the task's classes
    per_image: dict[int, int] = {}
    for p in store.read_predictions(runs["published"]):
        per_image[p["image_id"]] = per_image.get(p["image_id"], 0) + 1
    cap = task["provenance"]["detection_caps"]["per_chunk"]
    assert cap < 16 * classes and set(per_image.values()) == {16 * classes}  # 16 patches x 8 classes, under 300
