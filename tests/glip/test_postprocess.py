"""PostProcessor on hand-computed cases and against a loop-by-loop reference."""

import math

import pytest
import torch

from glip.anchors import AnchorGenerator
from glip.box_coder import BoxCoder
from glip.head_outputs import HeadOutputs
from glip.postprocess import PostProcessor, phrase_scores


def _logit(p):
    return math.log(p / (1 - p))


def _head(prob_rows, ctr_probs, bbox=None):
    """One image, one level: token probabilities [A, T] and centerness probabilities [A]."""
    probs = torch.tensor(prob_rows, dtype=torch.float64)
    logits = torch.log(probs / (1 - probs))[None]  # [1, A, T]
    ctr = torch.tensor([_logit(p) for p in ctr_probs], dtype=torch.float64)[None]  # [1, A]
    reg = torch.zeros(1, probs.shape[0], 4, dtype=torch.float64) if bbox is None else bbox
    return logits, reg, ctr


POS_MAP = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])  # phrase 0: tokens 0-1, phrase 1: token 2


def test_hand_case_scores_threshold_labels_and_rescale():
    #            tok0  tok1  tok2  tok3(unused)
    probs = [[0.10, 0.30, 0.04, 0.9],  # phrase 0 mean 0.2; phrase 1 0.04 < 0.05: dropped
             [0.01, 0.01, 0.06, 0.9],  # phrase 1 0.06 passes before centerness (0.06 * 0.2 < 0.05)
             [0.04, 0.07, 0.50, 0.9]]  # phrase 0 mean 0.055 and phrase 1 0.5: same box, both kept
    logits, reg, ctr = _head(probs, [0.5, 0.2, 0.9])
    anchors = torch.tensor([[-10.0, -10.0, 20.0, 20.0], [50.0, 50.0, 70.0, 70.0], [100.0, 80.0, 130.0, 110.0]],
                           dtype=torch.float64)
    post = PostProcessor()
    (det,) = post(HeadOutputs([logits], [reg], [ctr]), [anchors], POS_MAP, [(100, 120)], [(200, 240)])
    want_scores = [math.sqrt(0.5 * 0.9), math.sqrt(0.2 * 0.5), math.sqrt(0.055 * 0.9), math.sqrt(0.06 * 0.2)]
    torch.testing.assert_close(det.scores, torch.tensor(want_scores, dtype=torch.float64))
    assert det.labels.tolist() == [1, 0, 0, 1]
    assert det.labels.dtype == torch.long
    # zero deltas: the anchors, clipped to x in [0, 119], y in [0, 99], then scaled x2 to the original
    want_boxes = [[200.0, 160.0, 238.0, 198.0], [0.0, 0.0, 40.0, 40.0], [200.0, 160.0, 238.0, 198.0],
                  [100.0, 100.0, 140.0, 140.0]]
    torch.testing.assert_close(det.boxes_xyxy, torch.tensor(want_boxes, dtype=torch.float64))


def test_boxes_are_decoded_and_scaled_per_axis():
    logits, _, ctr = _head([[0.5, 0.5, 0.5, 0.5]], [0.5])
    reg = torch.tensor([[[1.0, 0.0, 0.0, 5 * math.log(2)]]], dtype=torch.float64)  # dx 0.1, height x2
    anchors = torch.tensor([[10.0, 10.0, 29.0, 29.0]], dtype=torch.float64)  # 20 x 20, centre 19.5
    (det,) = PostProcessor()(HeadOutputs([logits], [reg], [ctr]), [anchors], POS_MAP[:1], [(100, 100)],
                             [(50, 300)])
    # decoded: centre x 21.5, width 20; centre y 19.5, height 40 -> [12, 0, 31, 39] (y1 -0.5 clipped to 0)
    torch.testing.assert_close(det.boxes_xyxy, torch.tensor([[12.0 * 3, 0.0, 31.0 * 3, 39.0 * 0.5]],
                                                            dtype=torch.float64))


def test_top_k_per_level_ranks_by_score_times_centerness():
    # phrase 0 scores 0.9, 0.5, 0.6, 0.3 with centerness 0.1, 0.9, 0.8, 0.9: products 0.09, 0.45, 0.48, 0.27
    probs = [[p, p, 0.01, 0.01] for p in (0.9, 0.5, 0.6, 0.3)]
    logits, reg, ctr = _head(probs, [0.1, 0.9, 0.8, 0.9])
    anchors = torch.tensor([[0.0, 0.0, 9.0, 9.0], [20.0, 0.0, 29.0, 9.0], [40.0, 0.0, 49.0, 9.0],
                            [60.0, 0.0, 69.0, 9.0]], dtype=torch.float64)
    logits2, reg2, ctr2 = _head([[0.7, 0.7, 0.01, 0.01]] * 3, [0.5, 0.6, 0.7])
    anchors2 = anchors[:3] + 100
    post = PostProcessor(pre_nms_top_n=2)
    (det,) = post(HeadOutputs([logits, logits2], [reg, reg2], [ctr, ctr2]), [anchors, anchors2], POS_MAP,
                  [(200, 200)], [(200, 200)])
    want = sorted([0.48, 0.45, 0.7 * 0.7, 0.7 * 0.6], reverse=True)  # 2 from each level
    torch.testing.assert_close(det.scores, torch.tensor([math.sqrt(s) for s in want], dtype=torch.float64))


def test_class_aware_nms_and_cap():
    # three nearly identical boxes: phrases 0, 0, 1 -> the second phrase-0 box is suppressed
    probs = [[0.8, 0.8, 0.01, 0], [0.7, 0.7, 0.01, 0], [0.01, 0.01, 0.6, 0]]
    logits, reg, ctr = _head(probs, [0.5, 0.5, 0.5])
    anchors = torch.tensor([[0.0, 0.0, 49.0, 49.0], [1.0, 1.0, 50.0, 50.0], [0.0, 1.0, 49.0, 50.0]],
                           dtype=torch.float64)
    heads = HeadOutputs([logits], [reg], [ctr])
    (det,) = PostProcessor()(heads, [anchors], POS_MAP, [(100, 100)], [(100, 100)])
    assert det.labels.tolist() == [0, 1]
    torch.testing.assert_close(det.scores, torch.tensor([math.sqrt(0.4), math.sqrt(0.3)], dtype=torch.float64))
    (det,) = PostProcessor(nms_thresh=0.0)(heads, [anchors], POS_MAP, [(100, 100)], [(100, 100)])
    assert len(det) == 3  # the official skips NMS when nms_thresh <= 0
    # the cap keeps the best detections_per_img
    probs = [[p, p, 0.01, 0] for p in (0.3, 0.9, 0.5, 0.7, 0.6)]
    logits, reg, ctr = _head(probs, [0.5] * 5)
    anchors = torch.tensor([[30.0 * i, 0.0, 30.0 * i + 9, 9.0] for i in range(5)], dtype=torch.float64)
    (det,) = PostProcessor(detections_per_img=3)(HeadOutputs([logits], [reg], [ctr]), [anchors], POS_MAP,
                                                  [(200, 200)], [(200, 200)])
    torch.testing.assert_close(det.scores, torch.tensor([math.sqrt(p * 0.5) for p in (0.9, 0.7, 0.6)],
                                                        dtype=torch.float64))
    assert det.boxes_xyxy[:, 0].tolist() == [30.0, 90.0, 120.0]



def test_cap_per_call_overrides_the_constructed_one():
    probs = [[p, p, 0.01, 0] for p in (0.3, 0.9, 0.5, 0.7, 0.6)]
    logits, reg, ctr = _head(probs, [0.5] * 5)
    anchors = torch.tensor([[30.0 * i, 0.0, 30.0 * i + 9, 9.0] for i in range(5)], dtype=torch.float64)
    heads = HeadOutputs([logits], [reg], [ctr])
    post = PostProcessor(detections_per_img=4)
    (four,) = post(heads, [anchors], POS_MAP, [(200, 200)], [(200, 200)])
    (two,) = post(heads, [anchors], POS_MAP, [(200, 200)], [(200, 200)], detections_per_img=2)
    (every,) = post(heads, [anchors], POS_MAP, [(200, 200)], [(200, 200)], detections_per_img=0)
    assert (len(four), len(two), len(every)) == (4, 2, 5)  # 0: no cap
    torch.testing.assert_close(two.scores, four.scores[:2])
    assert post.detections_per_img == 4  # the call's cap is not state

def test_phrase_score_aggregation():
    probs = torch.tensor([[[0.2, 0.4, 0.9, 0.1]]])
    pmap = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    torch.testing.assert_close(phrase_scores(probs, pmap), torch.tensor([[[0.3, 1.4 / 3]]]))
    torch.testing.assert_close(phrase_scores(probs, pmap, "max"), torch.tensor([[[0.4, 0.9]]]))
    with pytest.raises(ValueError, match="cover no token"):
        phrase_scores(probs, torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="unknown score_agg"):
        PostProcessor(score_agg="power")


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)  # noqa: E731
    return iw * ih / (area(a) + area(b) - iw * ih)


def _reference(heads, anchors, pmap, image_size, original_size, b, top_n, cap, nms_thresh=0.6):
    """The official algorithm with its per-class loops, one image."""
    coder = BoxCoder()
    cands = []
    for lv, anc in enumerate(anchors):
        probs = torch.sigmoid(heads.logits[lv][b])
        ctr = torch.sigmoid(heads.centerness[lv][b])
        scores = torch.zeros(probs.shape[0], pmap.shape[0], dtype=probs.dtype)
        for j in range(pmap.shape[0]):
            scores[:, j] = probs[:, pmap[j] > 0].mean(-1)
        cand = scores > 0.05
        prod = (scores * ctr[:, None])[cand]
        k = min(int(cand.sum()), top_n)
        top, idx = prod.topk(k)
        loc, cls = cand.nonzero()[idx].unbind(1)
        boxes = coder.decode(heads.bbox_reg[lv][b][loc], anc[loc])
        h, w = image_size
        boxes = torch.stack([boxes[:, 0].clamp(0, w - 1), boxes[:, 1].clamp(0, h - 1),
                             boxes[:, 2].clamp(0, w - 1), boxes[:, 3].clamp(0, h - 1)], 1)
        cands += list(zip(boxes.tolist(), torch.sqrt(top).tolist(), cls.tolist()))
    cands.sort(key=lambda c: -c[1])
    kept = []
    for box, score, cls in cands:
        if nms_thresh <= 0 or all(c != cls or _iou(box, kb) <= nms_thresh for kb, _, c in kept):
            kept.append((box, score, cls))
    kept = kept[:cap]
    sx, sy = original_size[1] / image_size[1], original_size[0] / image_size[0]
    return [([x1 * sx, y1 * sy, x2 * sx, y2 * sy], s, c) for (x1, y1, x2, y2), s, c in kept]


def test_matches_loop_reference_batch_with_per_image_prompts():
    gen = torch.Generator().manual_seed(0)
    shapes = [(8, 8), (4, 4)]
    anchors = [a.double() for a in AnchorGenerator(strides=(8, 16), sizes=(64, 128))(shapes)]
    b, t = 2, 8
    heads = HeadOutputs(
        logits=[torch.randn(b, h * w, t, generator=gen, dtype=torch.float64) * 2 - 1 for h, w in shapes],
        bbox_reg=[torch.randn(b, h * w, 4, generator=gen, dtype=torch.float64) for h, w in shapes],
        centerness=[torch.randn(b, h * w, generator=gen, dtype=torch.float64) for h, w in shapes],
    )
    maps = [torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 0, 0]]).double(),
            torch.tensor([[0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1]]).double()]
    image_sizes, original_sizes = [(64, 60), (50, 64)], [(128, 90), (25, 64)]
    post = PostProcessor(pre_nms_top_n=20, detections_per_img=15)
    dets = post(heads, anchors, maps, image_sizes, original_sizes)
    assert max(len(d) for d in dets) == 15  # the cap binds
    for i, det in enumerate(dets):
        ref = _reference(heads, anchors, maps[i], image_sizes[i], original_sizes[i], i, 20, 15)
        assert len(det) == len(ref) > 5
        torch.testing.assert_close(det.boxes_xyxy, torch.tensor([r[0] for r in ref], dtype=torch.float64))
        torch.testing.assert_close(det.scores, torch.tensor([r[1] for r in ref], dtype=torch.float64))
        assert det.labels.tolist() == [r[2] for r in ref]
        assert int(det.labels.max()) < maps[i].shape[0]


@pytest.mark.parametrize("nms_thresh", [0.6, 0.0])
def test_shared_prompt_batch_matches_loop_reference_per_image(nms_thresh):
    """One positive map for the batch (the chunked engine's case): the images are processed together
    (one NMS call, images as groups); each image's detections equal the one-image reference, including an
    image with no candidate and images of different sizes."""
    gen = torch.Generator().manual_seed(1)
    shapes = [(8, 8), (4, 4), (2, 2)]
    anchors = [a.double() for a in AnchorGenerator(strides=(8, 16, 32), sizes=(64, 128, 256))(shapes)]
    b, t = 4, 8
    heads = HeadOutputs(
        logits=[torch.randn(b, h * w, t, generator=gen, dtype=torch.float64) * 2 - 1 for h, w in shapes],
        bbox_reg=[torch.randn(b, h * w, 4, generator=gen, dtype=torch.float64) for h, w in shapes],
        centerness=[torch.randn(b, h * w, generator=gen, dtype=torch.float64) for h, w in shapes],
    )
    for lv in range(len(shapes)):
        heads.logits[lv][2] = -8.0  # image 2: every token probability ~0.0003, no candidate
    pmap = torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 0, 0]]).double()
    image_sizes = [(64, 60), (50, 64), (64, 64), (30, 40)]
    original_sizes = [(128, 90), (25, 64), (64, 64), (60, 100)]
    post = PostProcessor(pre_nms_top_n=20, detections_per_img=15, nms_thresh=nms_thresh)
    dets = post(heads, anchors, pmap, image_sizes, original_sizes)
    assert len(dets) == b and len(dets[2]) == 0
    for i in (0, 1, 3):
        ref = _reference(heads, anchors, pmap, image_sizes[i], original_sizes[i], i, 20, 15, nms_thresh)
        assert len(dets[i]) == len(ref) > 5
        torch.testing.assert_close(dets[i].boxes_xyxy, torch.tensor([r[0] for r in ref], dtype=torch.float64))
        torch.testing.assert_close(dets[i].scores, torch.tensor([r[1] for r in ref], dtype=torch.float64))
        assert dets[i].labels.tolist() == [r[2] for r in ref]


def test_batch_size_mismatch_is_an_error():
    logits, reg, ctr = _head([[0.5, 0.5, 0.5, 0.5]], [0.5])
    with pytest.raises(ValueError, match="batch of 1"):
        PostProcessor()(HeadOutputs([logits], [reg], [ctr]), [torch.zeros(1, 4)], POS_MAP, [(1, 1)] * 2,
                        [(1, 1)])


def test_no_candidate_gives_empty_detections():
    logits, reg, ctr = _head([[0.01, 0.01, 0.01, 0.9]] * 2, [0.9, 0.9])  # every phrase below 0.05
    anchors = torch.tensor([[0.0, 0.0, 9.0, 9.0], [20.0, 0.0, 29.0, 9.0]], dtype=torch.float64)
    (det,) = PostProcessor()(HeadOutputs([logits], [reg], [ctr]), [anchors], POS_MAP, [(50, 50)], [(50, 50)])
    assert len(det) == 0 and det.boxes_xyxy.shape == (0, 4) and det.labels.dtype == torch.long
