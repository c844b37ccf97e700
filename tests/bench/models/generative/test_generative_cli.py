"""`glip-bench run --model hf:DIR --tasks synth-shapes --regime zero-shot` for each tiny text-answering model.

Two kinds of run: the model's own greedy generation (random weights: whatever it writes is parsed and
counted), and the same CLI path with the model's `generate` replaced by a script that writes a
hand-written answer with known token probabilities, so the COCO file must hold the hand-computed pixel
boxes and scores.
"""

from __future__ import annotations

import json

import pytest

from bench.results import store
from bench.testing.hf import OneThread, run_cli

FAMILIES = ("florence-2", "paligemma", "kosmos-2", "qwen2.5-vl", "qwen3-vl")
CLASSES = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "heart")  # synth-shapes, id order


# answers by prompt: (text, probability of every token); 128 x 128 images
def florence_script(prompt: str) -> tuple[str, float]:
    if "Locate circle " in prompt:  # x = int((b + 0.5) * 0.128)
        return "circle<loc_250><loc_500><loc_750><loc_999>", 0.5
    if "Locate square " in prompt:
        return "square<loc_0><loc_0><loc_499><loc_499>blob<loc_1><loc_1><loc_2><loc_2>", 0.25
    return "heart<loc_5>", 1.0  # truncated


def paligemma_script(prompt: str) -> tuple[str, float]:
    assert "detect circle ; square ; triangle" in prompt
    return ("<loc0000><loc0000><loc1023><loc1023> circle ; <loc0512><loc0256><loc1023><loc0767> square ; "
            "<loc0001><loc0001><loc0002><loc0002> blob ; <loc0003> heart", 0.5)


def kosmos_script(prompt: str) -> tuple[str, float]:
    if "circle</phrase>" in prompt:  # corners at cell centres: 0.5 / 32 * 128 = 2, 31.5 / 32 * 128 = 126
        return "<object><patch_index_0000><patch_index_1023></object>", 0.5
    if "square</phrase>" in prompt:  # one cell (1, 1): whole cell; then a pair cut short; then another phrase
        return ("<object><patch_index_0033><patch_index_0033></delimiter_of_multi_objects/><patch_index_0040>"
                "</object><phrase> blob</phrase><object><patch_index_0001><patch_index_0002></object>", 0.25)
    return "<object><patch_index_0005>", 1.0  # never closed


def qwen_script(circle: list[int], square: list[int]):
    def script(prompt: str) -> tuple[str, float]:
        assert '"circle", "square", "triangle"' in prompt
        rows = [f'{{"bbox_2d": {circle}, "label": "circle"}}', f'{{"bbox_2d": {square}, "label": "square"}}',
                '{"bbox_2d": [1, 2, 3], "label": "heart"}', '{"bbox_2d": [1, 1, 2, 2], "label": "blob"}',
                '{"bbox_2d": [5, ']  # three numbers; outside the prompt; cut off by the budget
        return "```json\n[\n\t" + ",\n\t".join(rows), 0.5
    return script


SCRIPTS = {"florence-2": florence_script, "paligemma": paligemma_script, "kosmos-2": kosmos_script,
           # Qwen2.5-VL: pixels of the 140 x 140 input (x 128 / 140); Qwen3-VL: 0-1000 (x 0.128)
           "qwen2.5-vl": qwen_script([35, 70, 105, 140], [0, 0, 70, 70]),
           "qwen3-vl": qwen_script([250, 500, 750, 1000], [0, 0, 500, 500])}
EXPECTED = {  # (category, [x, y, w, h], score) per image, by score
    "florence-2": [("circle", [32, 64, 64, 63], 0.5), ("square", [0, 0, 63, 63], 0.25)],
    "paligemma": [("circle", [0, 0, 128, 128], 0.5),
                  ("square", [256 * 128 / 1023, 512 * 128 / 1023, 511 * 128 / 1023, 511 * 128 / 1023], 0.5)],
    "kosmos-2": [("circle", [2, 2, 124, 124], 0.25), ("square", [4, 4, 4, 4], 0.0625)],  # two box tokens each
    "qwen2.5-vl": [("circle", [32, 64, 64, 64], 0.5), ("square", [0, 0, 64, 64], 0.5)],
    "qwen3-vl": [("circle", [32, 64, 64, 64], 0.5), ("square", [0, 0, 64, 64], 0.5)],
}
COUNTS = {  # per image: answers, parsed boxes, unparseable, outside the prompt
    "florence-2": (8, 3, 6, 1),
    "paligemma": (1, 3, 1, 1),
    "kosmos-2": (8, 3, 7, 1),
    "qwen2.5-vl": (1, 3, 2, 1),
    "qwen3-vl": (1, 3, 2, 1),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_scripted_answers_land_in_the_coco_file_as_hand_computed_pixels(family, tiny, scripted, data_root, tmp_path):
    model_dir = scripted(family, SCRIPTS[family])
    with OneThread():
        rc, [record] = run_cli(model_dir, data_root, tmp_path / "results")
    assert rc == 0
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    preds = store.read_predictions(run_dir)
    images = sorted({p["image_id"] for p in preds})
    assert len(images) == 8
    for image_id in images:
        got = [(CLASSES[p["category_id"] - 1] if p["category_id"] <= 8 else p["category_id"], p["bbox"], p["score"])
               for p in preds if p["image_id"] == image_id]
        assert [(c, s) for c, _, s in got] == [(c, s) for c, _, s in EXPECTED[family]]
        for (_, box, _), (_, want, _) in zip(got, EXPECTED[family]):
            assert box == pytest.approx(want, abs=1e-4)
    limits = record["provenance"]["model_limits"]
    assert limits["prompts"] == COUNTS[family][0]  # distinct prompt texts: one per class, or one per chunk
    assert limits["prompt_example"].startswith({"florence-2": "<OPEN_VOCABULARY_DETECTION>circle",
                                                "paligemma": "detect circle ; square", "kosmos-2": "<grounding>",
                                                "qwen2.5-vl": "Locate every", "qwen3-vl": "Locate every"}[family])
    answers = limits["answers"]
    per_image = COUNTS[family]
    assert (answers["answers"], answers["parsed_boxes"], answers["unparseable"],
            answers["labels_outside_prompt"]) == tuple(8 * n for n in per_image)
    assert answers["unmatched_labels"] == {"blob": 8}


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_shot_generation_writes_a_record(family, tiny, data_root, tmp_path, monkeypatch):
    """The tiny model's own greedy generation, with the budget cut to 12 new tokens for test time (the
    random model rarely ends on its own: 100 detections' worth of tokens takes minutes on CPU)."""
    from bench.models.generative.adapter import GenerativeAdapter
    from bench.models.registry import family_of

    monkeypatch.setattr(GenerativeAdapter, "token_budget", lambda self, entries, cap: 12)
    model_dir = tiny(family)
    with OneThread():
        rc, [record] = run_cli(model_dir, data_root, tmp_path / "results")
    assert rc == 0
    module = family_of(f"hf:{model_dir}").module
    limits = record["provenance"]["model_limits"]
    assert record["model"]["family"] == module.NAME == limits["family"]
    assert limits["coordinates"] == module.COORDINATES and limits["text_input"] == module.PROMPTING
    assert "label tokens" in limits["score"] and "PIL" in limits["pixel_path"]
    answers = limits["answers"]
    prompts = 8 if module.CLASSES_PER_PROMPT == 1 else 1  # synth-shapes: 8 classes, no chunk size
    assert answers["answers"] == 8 * prompts  # every (image, prompt) answered once
    assert answers["parsed_boxes"] >= answers["labels_outside_prompt"]
    preds = store.read_predictions(next((tmp_path / "results" / "runs").iterdir()))
    assert len(preds) == answers["parsed_boxes"] - answers["labels_outside_prompt"]  # cap 100 not reached
    assert limits["max_new_tokens"] == {"min": 12, "max": 12}
    settings = limits["generation_settings"]
    assert settings["do_sample"] is False and settings.get("num_beams", 1) == 1 and settings["output_logits"] is True
    assert 0.0 <= record["metrics"]["values"]["AP"] <= 1.0
    json.dumps(record)


def test_score_free_metrics_add_to_a_generative_record(scripted, data_root, tmp_path):
    """Precision / recall / F1 at IoU 0.5 (bench.metrics.f1) score a generative run's saved predictions,
    as `glip-bench score --metric f1` adds them."""
    from bench.runs.scoring import add_extra_metrics

    model_dir = scripted("paligemma", SCRIPTS["paligemma"])
    with OneThread():
        rc, _ = run_cli(model_dir, data_root, tmp_path / "results")
    assert rc == 0
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    record = add_extra_metrics(run_dir, ["f1"], data_root)
    f1 = record["metrics"]["extra"]["f1"]
    values = f1["values"]
    assert "IoU 0.5" in f1["definition"]
    assert 0.0 <= values["R50"] <= 100.0 and 0.0 <= values["F1max50"] <= 100.0
    assert values["score_F1max50"] == pytest.approx(0.5)  # every kept box scored 0.5 by the script
