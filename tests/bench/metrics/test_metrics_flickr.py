"""flickr_recall against a plain-loop reference written here from the protocol, plus hand cases."""

from __future__ import annotations

import math

import pytest

from bench.metrics import evaluate
from bench.testing.metrics import make_flickr_fixture
from bench.util.errors import UserError


def iou(a: list[float], b: list[float]) -> float:
    """Continuous-coordinate IoU of two xyxy boxes (MDETR / GLIP flickr_eval convention, no +1)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_recall(entries: list[dict], predictions: list[dict], merged: bool) -> dict[str, float]:
    """The protocol, spelled out: for each phrase with boxes and each k, best IoU of the top k >= 0.5."""
    pred_of = {p["image_id"]: p for p in predictions}
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for entry in entries:
        for i, phrase in enumerate(entry["phrases"]):
            gts = phrase["boxes"]
            if not gts:
                continue
            if merged:
                gts = [
                    [
                        min(g[0] for g in gts),
                        min(g[1] for g in gts),
                        max(g[2] for g in gts),
                        max(g[3] for g in gts),
                    ]
                ]
            ranked = pred_of[entry["image_id"]]["boxes"][i]
            for name, k in (("R@1", 1), ("R@5", 5), ("R@10", 10), ("UB", len(ranked))):
                best = 0.0
                for box in ranked[:k]:
                    for g in gts:
                        best = max(best, iou(box, g))
                for group in [""] + ["/" + t for t in phrase["types"]]:
                    key = name + group
                    totals[key] = totals.get(key, 0) + 1
                    hits[key] = hits.get(key, 0) + (1 if best >= 0.5 else 0)
    return {key: 100.0 * hits[key] / totals[key] for key in totals}


@pytest.fixture(scope="module")
def fixture() -> tuple[list[dict], list[dict]]:
    entries, preds = make_flickr_fixture(n_entries=600, seed=7)
    n_phrases = sum(1 for e in entries for p in e["phrases"] if p["boxes"])
    assert n_phrases >= 1000
    assert any(not p["boxes"] for e in entries for p in e["phrases"])  # some phrases to skip
    return entries, preds


@pytest.mark.parametrize("merged", [False, True], ids=["any-box", "merged-box"])
def test_equals_plain_loop_reference(fixture, merged):
    entries, preds = fixture
    ours = evaluate("flickr_recall", entries, preds, merged=merged)
    ref = reference_recall(entries, preds, merged)
    assert ours.values.keys() == ref.keys()
    for key in ref:
        assert ours.values[key] == pytest.approx(ref[key], abs=1e-12), key
    assert ours.primary == "R@1" and ours.per_class == {
        k[4:]: v for k, v in ours.values.items() if k.startswith("R@1/")
    }
    assert 0 < ours.values["R@1"] < ours.values["R@5"] < ours.values["R@10"] <= ours.values["UB"] < 100


def test_any_box_and_merged_box_differ_on_the_fixture(fixture):
    entries, preds = fixture
    anybox = evaluate("flickr_recall", entries, preds)
    mergedbox = evaluate("flickr_recall", entries, preds, merged=True)
    assert anybox.values["R@1"] != mergedbox.values["R@1"]


def _entry(gt_boxes: list[list[float]], types=("people",), image_id: int = 1) -> dict:
    return {"image_id": image_id, "phrases": [{"phrase_id": "p0", "boxes": gt_boxes, "types": list(types)}]}


FAR = [200.0, 200.0, 210.0, 210.0]
GT = [0.0, 0.0, 10.0, 10.0]


@pytest.mark.parametrize(
    "rank, expected",
    [
        (0, {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "UB": 100.0}),
        (1, {"R@1": 0.0, "R@5": 100.0, "R@10": 100.0, "UB": 100.0}),  # second box: R@1 misses, R@5 hits
        (4, {"R@1": 0.0, "R@5": 100.0, "R@10": 100.0, "UB": 100.0}),
        (5, {"R@1": 0.0, "R@5": 0.0, "R@10": 100.0, "UB": 100.0}),
        (10, {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "UB": 100.0}),  # 11th box: only the upper bound
        (None, {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "UB": 0.0}),
    ],
)
def test_rank_of_the_matching_box(rank, expected):
    ranked = [FAR] * 12
    if rank is not None:
        ranked[rank] = GT
    r = evaluate("flickr_recall", [_entry([GT])], [{"image_id": 1, "boxes": [ranked]}])
    assert {k: r.values[k] for k in expected} == expected


def test_any_box_versus_merged_box_hand_case():
    gt = [[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]]  # enclosing box [0, 0, 30, 10]
    one = [
        {"image_id": 1, "boxes": [[[0.0, 0.0, 10.0, 10.0]]]}
    ]  # matches one box; IoU 1/3 with the enclosing
    enclosing = [{"image_id": 1, "boxes": [[[0.0, 0.0, 30.0, 10.0]]]}]  # IoU 1/3 with each box
    assert evaluate("flickr_recall", [_entry(gt)], one).values["R@1"] == 100.0
    assert evaluate("flickr_recall", [_entry(gt)], one, merged=True).values["R@1"] == 0.0
    assert evaluate("flickr_recall", [_entry(gt)], enclosing).values["R@1"] == 0.0
    assert evaluate("flickr_recall", [_entry(gt)], enclosing, merged=True).values["R@1"] == 100.0


def test_iou_convention_and_threshold():
    # IoU exactly 0.5 is a hit (>=)
    half = [{"image_id": 1, "boxes": [[[0.0, 0.0, 10.0, 10.0]]]}]
    assert evaluate("flickr_recall", [_entry([[0.0, 0.0, 20.0, 10.0]])], half).values["R@1"] == 100.0
    # no +1: 100 / 210 = 0.476 is a miss (the +1 convention would give 121 / 242 = 0.5, a hit)
    assert evaluate("flickr_recall", [_entry([[0.0, 0.0, 10.0, 21.0]])], half).values["R@1"] == 0.0
    assert (
        evaluate("flickr_recall", [_entry([[0.0, 0.0, 10.0, 21.0]])], half, iou_thresh=0.45).values["R@1"]
        == 100.0
    )


def test_types_skips_and_empty_predictions():
    entries = [
        {"image_id": 1, "phrases": [
            {"phrase_id": "a", "boxes": [GT], "types": ["people", "clothing"]},
            {"phrase_id": "b", "boxes": [], "types": ["scene"]},  # no box: not scored
            {"phrase_id": "c", "boxes": [GT], "types": ["animals"]},
        ]},
        {"image_id": 2, "phrases": [{"phrase_id": "d", "boxes": [], "types": ["other"]}]},  # nothing to score
    ]  # fmt: skip
    preds = [
        {"image_id": 1, "boxes": [[GT], [], []], "scores": [[0.9], [], []]}
    ]  # phrase c: no box predicted
    r = evaluate("flickr_recall", entries, preds)
    assert r.values["R@1"] == 50.0 and r.values["UB"] == 50.0
    assert (
        r.values["R@1/people"] == 100.0
        and r.values["R@1/clothing"] == 100.0
        and r.values["R@1/animals"] == 0.0
    )
    assert "R@1/scene" not in r.values and "R@1/other" not in r.values
    assert r.per_class == {"animals": 0.0, "clothing": 100.0, "people": 100.0}
    empty = evaluate("flickr_recall", [entries[1]], [])
    assert math.isnan(empty.values["R@1"])


def test_bad_predictions_are_refused():
    entries = [_entry([GT], image_id=1), _entry([GT], image_id=2)]
    ok = {"image_id": 2, "boxes": [[GT]]}
    with pytest.raises(UserError, match="no grounding prediction for entry image_id 1"):
        evaluate("flickr_recall", entries, [ok])
    with pytest.raises(UserError, match="has boxes for 2 phrases; the entry has 1"):
        evaluate("flickr_recall", entries, [{"image_id": 1, "boxes": [[GT], [GT]]}, ok])
    with pytest.raises(UserError, match="two grounding predictions"):
        evaluate("flickr_recall", entries, [ok, ok])
    with pytest.raises(UserError, match="image_id 3"):
        evaluate("flickr_recall", entries, [{"image_id": 3, "boxes": [[GT]]}])
    with pytest.raises(UserError, match="sorted by score"):
        evaluate(
            "flickr_recall", entries, [{"image_id": 1, "boxes": [[GT, FAR]], "scores": [[0.1, 0.9]]}, ok]
        )
    with pytest.raises(UserError, match="x1, y1, x2, y2"):
        evaluate("flickr_recall", entries, [{"image_id": 1, "boxes": [[[1, 2, 3]]]}, ok])
    with pytest.raises(UserError, match="unknown option"):
        evaluate("flickr_recall", entries, [], merge=True)
