"""Greedy generation and its token probabilities (the scores) are the same on every run: a fresh load of
the tiny model, the same image and prompt, give the same tokens, the same log-probabilities bit for bit,
and so the same ranking of any spans scored by them."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from bench.models import build_adapter
from bench.models.base import DetectSettings
from bench.models.generative.answers import span_score


@pytest.mark.parametrize("family", ["paligemma", "qwen3-vl"])
def test_same_answer_and_scores_on_a_fresh_load(family, tiny):
    image = Image.new("RGB", (96, 64), (200, 40, 40))
    runs = []
    for _ in range(2):
        adapter = build_adapter(f"hf:{tiny(family)}")
        inputs, _ = adapter.inputs(image, adapter.fam.detection_prompt(["circle", "square"]))
        runs.append(adapter.generate(inputs, 24, DetectSettings(per_chunk_cap=3, per_image_cap=None), None))
    (ids_a, lp_a), (ids_b, lp_b) = runs
    assert ids_a == ids_b and len(ids_a) > 0
    assert torch.equal(lp_a, lp_b)
    assert bool((lp_a <= 0).all())  # log-probabilities
    # every token scored as a one-token "label": identical scores, identical ranking
    spans = [(k, k + 1) for k in range(len(ids_a))]
    scores = [[span_score(s, spans, lp) for s in spans] for lp in (lp_a, lp_b)]
    assert scores[0] == scores[1]
    rank = [sorted(range(len(s)), key=lambda k: -s[k]) for s in scores]
    assert rank[0] == rank[1]
    assert scores[0][0] == pytest.approx(float(lp_a[0].exp()))
