"""Head outputs -> per-image detections, as the official ATSSPostProcessor (glip-official.md 1.8)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from glip.box_coder import BoxCoder
from glip.head_outputs import HeadOutputs
from glip.ops.boxes import clip_boxes
from glip.ops.nms import batched_nms
from glip.structures import Detections

SCORE_AGGREGATIONS = ("mean", "max")


def phrase_scores(token_probs: Tensor, positive_map: Tensor, score_agg: str = "mean") -> Tensor:
    """Token probabilities [B, A, T] -> phrase scores [B, A, P] (official convert_grounding_to_od_logits).

    positive_map [P, T]: non-zero entries mark the tokens of phrase p. "mean" averages the phrase's
    token probabilities (SCORE_AGG MEAN, the default), "max" takes their maximum.
    """
    if positive_map.dim() != 2 or positive_map.shape[1] != token_probs.shape[-1]:
        raise ValueError(f"positive_map must be [P, {token_probs.shape[-1]}] (phrases x tokens), "
                         f"got {tuple(positive_map.shape)}")
    member = positive_map > 0  # [P, T]
    counts = member.sum(dim=1)  # [P]
    if bool((counts == 0).any()):
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"phrases {empty} of the positive map cover no token; every phrase needs >= 1 token")
    if score_agg == "mean":
        weights = member.to(token_probs.dtype) / counts[:, None].to(token_probs.dtype)  # [P, T]
        return token_probs @ weights.t()  # [B, A, P]
    if score_agg == "max":
        phrase_of, token_of = member.nonzero(as_tuple=True)  # [Z] (phrase, token) pairs
        gathered = token_probs[..., token_of]  # [B, A, Z]
        out = token_probs.new_zeros(*token_probs.shape[:-1], positive_map.shape[0])  # [B, A, P]
        index = phrase_of.expand_as(gathered)
        return out.scatter_reduce(-1, index, gathered, reduce="amax", include_self=False)
    raise ValueError(f"unknown score_agg {score_agg!r}; valid: {', '.join(SCORE_AGGREGATIONS)}")


class PostProcessor(nn.Module):
    """Per level: phrase scores, threshold, top-k, decode and clip; then class-aware NMS and a cap.

    Official order (glip-official.md 1.8): candidates are phrase scores > pre_nms_thresh *before*
    centerness; the top pre_nms_top_n per level and image are ranked by score * sigmoid(centerness);
    the reported score is sqrt(score * sigmoid(centerness)). Boxes are clipped to the model-input
    image (x in [0, w-1]), then scaled to original_sizes as the official BoxList.resize (no second
    clip). Labels are 0-based phrase indices (the official label - 1).

    Deviation: the final cap keeps exactly detections_per_img by top-k; the official kthvalue
    threshold can keep a few more when scores tie at the cut.
    """

    def __init__(self, pre_nms_thresh: float = 0.05, pre_nms_top_n: int = 1000, nms_thresh: float = 0.6,
                 detections_per_img: int = 100, score_agg: str = "mean", box_coder: BoxCoder | None = None) -> None:
        super().__init__()
        if score_agg not in SCORE_AGGREGATIONS:
            raise ValueError(f"unknown score_agg {score_agg!r}; valid: {', '.join(SCORE_AGGREGATIONS)}")
        self.pre_nms_thresh = pre_nms_thresh
        self.pre_nms_top_n = pre_nms_top_n
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.score_agg = score_agg
        self.box_coder = box_coder or BoxCoder()

    @torch.no_grad()
    def forward(self, head_outputs: HeadOutputs, anchors_per_level: Sequence[Tensor],
                positive_map: Tensor | Sequence[Tensor], image_sizes: Sequence[tuple[int, int]],
                original_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """positive_map: one [P, T] for the whole batch, or one per image (each image its own prompt).

        image_sizes / original_sizes: (h, w) per image, after resizing (before padding) / as given.
        """
        batch = head_outputs.logits[0].shape[0]
        maps = [positive_map] * batch if isinstance(positive_map, Tensor) else list(positive_map)
        if len(maps) != batch or len(image_sizes) != batch or len(original_sizes) != batch:
            raise ValueError(f"batch of {batch} images but {len(maps)} positive maps, {len(image_sizes)} "
                             f"image_sizes and {len(original_sizes)} original_sizes")
        if len(anchors_per_level) != head_outputs.num_levels:
            raise ValueError(f"{len(anchors_per_level)} anchor levels for {head_outputs.num_levels} head levels")
        results = []
        for i in range(batch):  # a loop over images
            per_level = [
                self._level_candidates(head_outputs.logits[lv][i], head_outputs.bbox_reg[lv][i],
                                       head_outputs.centerness[lv][i], anchors_per_level[lv], maps[i],
                                       image_sizes[i])
                for lv in range(head_outputs.num_levels)  # a loop over levels
            ]
            boxes = torch.cat([p[0] for p in per_level])  # [N, 4]
            scores = torch.cat([p[1] for p in per_level])  # [N]
            labels = torch.cat([p[2] for p in per_level])  # [N]
            results.append(self._select(boxes, scores, labels, image_sizes[i], original_sizes[i]))
        return results

    def _level_candidates(self, logits: Tensor, bbox_reg: Tensor, centerness: Tensor, anchors: Tensor,
                          positive_map: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """One image, one level: logits [A, T], bbox_reg [A, 4], centerness [A], anchors [A, 4]
        -> boxes [K, 4], scores [K], labels [K] with K <= pre_nms_top_n."""
        dtype = torch.promote_types(logits.dtype, torch.float32)  # score half/bf16 outputs in fp32
        probs = torch.sigmoid(logits.to(dtype))[None]  # [1, A, T]
        scores = phrase_scores(probs, positive_map.to(probs), self.score_agg)[0]  # [A, P]
        candidate = scores > self.pre_nms_thresh  # [A, P] threshold before centerness
        ranked = scores * torch.sigmoid(centerness.to(dtype))[:, None]  # [A, P]
        flat = torch.where(candidate, ranked, torch.full_like(ranked, -1.0)).flatten()  # [A*P]
        k = min(int(candidate.sum()), self.pre_nms_top_n)
        top, idx = flat.topk(k)  # only candidates (>= 0) can be among the top k
        num_phrases = scores.shape[1]
        loc, label = idx // num_phrases, idx % num_phrases
        boxes = self.box_coder.decode(bbox_reg[loc].to(dtype), anchors[loc].to(dtype))  # [K, 4]
        boxes = clip_boxes(boxes, image_size[0], image_size[1])  # official clip_to_image(remove_empty=False)
        return boxes, torch.sqrt(top), label

    def _select(self, boxes: Tensor, scores: Tensor, labels: Tensor, image_size: tuple[int, int],
                original_size: tuple[int, int]) -> Detections:
        if self.nms_thresh > 0:  # official boxlist_ml_nms returns everything when nms_thresh <= 0
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)
        else:
            keep = scores.argsort(descending=True, stable=True)
        if self.detections_per_img > 0:
            keep = keep[: self.detections_per_img]  # keep is sorted by score, descending
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        # official BoxList.resize to the original image: scale x by w0/w and y by h0/h
        (h, w), (h0, w0) = image_size, original_size
        scale = boxes.new_tensor([w0 / w, h0 / h, w0 / w, h0 / h])
        return Detections(boxes_xyxy=boxes * scale, scores=scores, labels=labels.long())
