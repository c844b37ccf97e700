"""Phrase grounding for the families that ground (Florence-2 with the caption, the others one phrase per
prompt), through the CLI on synth-grounding with scripted answers; and what each family refuses, before
any compute."""

from __future__ import annotations

import json

import pytest

from bench.results import store
from bench.tasks.registry import get_task
from bench.testing.hf import OneThread, run_cli

TASK = "synth-grounding"


def phrase_texts(sample) -> list[str]:
    return [" ".join(sample.caption[s:e] for s, e in p.spans) for p in sample.phrases]


@pytest.mark.parametrize("family", ["florence-2", "kosmos-2", "qwen3-vl"])
def test_grounding_answers_become_phrase_boxes(family, scripted, data_root, tmp_path):
    task = get_task(TASK)
    dataset = task.load(task.eval_split, data_root)
    by_caption = {s.caption: phrase_texts(s) for s in dataset.samples}
    firsts = {texts[0] for texts in by_caption.values()}

    def script(prompt: str) -> tuple[str, float]:
        if family == "florence-2":  # the caption in one prompt; the first phrase gets a box, plus a stray label
            caption = prompt.split("Locate the phrases in the caption: ")[1].split("</s>")[0]
            return by_caption[caption][0] + "<loc_0><loc_0><loc_499><loc_499>stray<loc_1><loc_1><loc_2><loc_2>", 0.5
        phrase = next((t for t in firsts if f"<phrase> {t}</phrase>" in prompt or json.dumps(t) + "." in prompt),
                      None)
        if phrase is None:
            return "", 1.0
        if family == "kosmos-2":  # one cell (0, 0) .. (15, 15): centres 0.5 / 32 and 15.5 / 32
            return "<object><patch_index_0000><patch_index_0495></object>", 0.5
        return json.dumps([{"bbox_2d": [0, 0, 500, 500], "label": phrase}]), 0.5

    model_dir = scripted(family, script)
    with OneThread():
        rc, [record] = run_cli(model_dir, data_root, tmp_path / "results", task=TASK)
    assert rc == 0
    preds = {p["image_id"]: p for p in store.read_predictions(next((tmp_path / "results" / "runs").iterdir()))}
    assert set(preds) == {s.id for s in dataset.samples}
    boxed = 0
    for sample in dataset.samples:
        w, h = sample.image.width, sample.image.height
        texts = phrase_texts(sample)
        if family == "florence-2":
            index = {t: p for p, t in enumerate(texts)}  # the last phrase of a repeated text takes the label
            want = {index[texts[0]]: [int(0.5 * w / 1000), int(0.5 * h / 1000), int(499.5 * w / 1000),
                                      int(499.5 * h / 1000)]}
        elif family == "kosmos-2":
            want = {p: [w / 64, h / 64, w * 31 / 64, h * 31 / 64] for p, t in enumerate(texts) if t in firsts}
        else:
            want = {p: [0, 0, w / 2, h / 2] for p, t in enumerate(texts) if t in firsts}
        entry = preds[sample.id]
        assert len(entry["boxes"]) == len(texts)
        for p in range(len(texts)):
            assert entry["boxes"][p] == ([pytest.approx(want[p])] if p in want else [])
        boxed += len(want)
    assert boxed >= len(dataset.samples)
    answers = record["provenance"]["model_limits"]["answers"]
    assert answers["labels_outside_prompt"] == (len(dataset.samples) if family == "florence-2" else 0)
    assert 0.0 <= record["metrics"]["values"][record["metrics"]["primary"]] <= 100.0


@pytest.mark.parametrize(("family", "task", "regime", "message"), [
    ("paligemma", TASK, "zero-shot", "paligemma cannot run phrase grounding: its detect prompt names classes to find"),
    ("florence-2", "synth-shapes", "full-ft", "florence-2 cannot run full-ft: its transformers class gives a "
     "language-model loss on target text only"),
    ("paligemma", "synth-shapes", "prompt-tuning", "paligemma cannot run prompt-tuning: only full-ft is defined"),
    ("qwen2.5-vl", "synth-shapes", "linear-probe", "qwen2.5-vl cannot run linear-probe"),
])
def test_refused_before_any_compute(family, task, regime, message, tiny, data_root, tmp_path, capsys):
    extra = () if regime == "zero-shot" else ("--shots", "1", "--seeds", "3")
    rc, records = run_cli(tiny(family), data_root, tmp_path / "results", *extra, task=task, regime=regime)
    assert rc == 2 and records == []
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results" / "runs").exists()


def test_batching_and_glip_fields_are_refused(tiny, data_root, tmp_path, capsys):
    rc, _ = run_cli(tiny("kosmos-2"), data_root, tmp_path / "r", "--set", "infer_batch_size=2")
    assert rc == 2 and "infer_batch_size must be 1" in capsys.readouterr().err
    rc, _ = run_cli(tiny("kosmos-2"), data_root, tmp_path / "r", "--set", "fusion=late")
    assert rc == 2 and "GLIP model fields ['fusion'] do not apply" in capsys.readouterr().err
