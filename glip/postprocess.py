"""Head outputs -> per-image detections, as the official ATSSPostProcessor
(maskrcnn_benchmark/modeling/rpn/inference.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from glip.box_coder import BoxCoder
from glip.head_outputs import HeadOutputs
from glip.ops.boxes import clip_boxes_per_image
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

    Official order (ATSSPostProcessor.forward_for_single_feature_map and select_over_all_levels): candidates
    are phrase scores > pre_nms_thresh *before*
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
                original_sizes: Sequence[tuple[int, int]], detections_per_img: int | None = None
                ) -> list[Detections]:
        """positive_map: one [P, T] for the whole batch, or one per image (each image its own prompt).

        image_sizes / original_sizes: (h, w) per image, after resizing (before padding) / as given.
        detections_per_img: this call's cap per image (<= 0: no cap); None: the one given at construction.
        A task's cap is a per-call choice, so callers pass it rather than change this module's state.
        Images that share a positive map are processed together: tensor ops over the batch, one NMS call.
        """
        cap = self.detections_per_img if detections_per_img is None else int(detections_per_img)
        batch = head_outputs.logits[0].shape[0]
        maps = [positive_map] * batch if isinstance(positive_map, Tensor) else list(positive_map)
        if len(maps) != batch or len(image_sizes) != batch or len(original_sizes) != batch:
            raise ValueError(f"batch of {batch} images but {len(maps)} positive maps, {len(image_sizes)} "
                             f"image_sizes and {len(original_sizes)} original_sizes")
        if len(anchors_per_level) != head_outputs.num_levels:
            raise ValueError(f"{len(anchors_per_level)} anchor levels for {head_outputs.num_levels} head levels")
        if all(m is maps[0] for m in maps):
            return self._same_prompt(head_outputs, anchors_per_level, maps[0], image_sizes, original_sizes, cap)
        return [self._same_prompt(_image_outputs(head_outputs, i), anchors_per_level, maps[i], image_sizes[i:i + 1],
                                  original_sizes[i:i + 1], cap)[0]
                for i in range(batch)]  # a loop over images only when their prompts differ

    def _same_prompt(self, outputs: HeadOutputs, anchors_per_level: Sequence[Tensor], positive_map: Tensor,
                     image_sizes: Sequence[tuple[int, int]], original_sizes: Sequence[tuple[int, int]], cap: int
                     ) -> list[Detections]:
        """A batch of images scored against one positive map."""
        per_level = [
            self._level_candidates(outputs.logits[lv], outputs.bbox_reg[lv], outputs.centerness[lv],
                                   anchors_per_level[lv], positive_map, image_sizes)
            for lv in range(outputs.num_levels)  # a loop over levels
        ]
        boxes = torch.cat([p[0] for p in per_level], dim=1)  # [B, K, 4], K = candidates of every level
        scores = torch.cat([p[1] for p in per_level], dim=1)  # [B, K]
        labels = torch.cat([p[2] for p in per_level], dim=1)  # [B, K]
        valid = torch.cat([p[3] for p in per_level], dim=1)  # [B, K] False: filler of an image with fewer
        return self._select(boxes, scores, labels, valid, image_sizes, original_sizes, cap)

    def _level_candidates(self, logits: Tensor, bbox_reg: Tensor, centerness: Tensor, anchors: Tensor,
                          positive_map: Tensor, image_sizes: Sequence[tuple[int, int]]
                          ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One level, every image: logits [B, A, T], bbox_reg [B, A, 4], centerness [B, A], anchors [A, 4]
        -> boxes [B, k, 4], scores [B, k], labels [B, k], valid [B, k] with k <= pre_nms_top_n.

        Image i's candidates are the first min(its candidates, pre_nms_top_n) of its row, best first; k is
        the largest such count in the batch and the rest of a row is filler (valid False)."""
        b = logits.shape[0]
        dtype = torch.promote_types(logits.dtype, torch.float32)  # score half/bf16 outputs in fp32
        probs = torch.sigmoid(logits.to(dtype))  # [B, A, T]
        scores = phrase_scores(probs, positive_map.to(probs), self.score_agg)  # [B, A, P]
        candidate = scores > self.pre_nms_thresh  # [B, A, P] threshold before centerness
        ranked = scores * torch.sigmoid(centerness.to(dtype))[..., None]  # [B, A, P], >= 0
        flat = torch.where(candidate, ranked, torch.full_like(ranked, -1.0)).flatten(1)  # [B, A*P]
        k = min(int(candidate.flatten(1).sum(dim=1).max()) if b else 0, self.pre_nms_top_n)
        top, idx = flat.topk(k, dim=1)  # [B, k] only candidates (>= 0) can be among an image's top k
        num_phrases = scores.shape[2]
        loc, label = idx // num_phrases, idx % num_phrases  # [B, k]
        deltas = bbox_reg.gather(1, loc[..., None].expand(-1, -1, 4)).to(dtype)  # [B, k, 4]
        boxes = self.box_coder.decode(deltas.reshape(-1, 4), anchors[loc.flatten()].to(dtype)).reshape(b, k, 4)
        boxes = clip_boxes_per_image(boxes, image_sizes)  # official clip_to_image(remove_empty=False)
        return boxes, torch.sqrt(top.clamp(min=0)), label, top >= 0

    def _select(self, boxes: Tensor, scores: Tensor, labels: Tensor, valid: Tensor,
                image_sizes: Sequence[tuple[int, int]], original_sizes: Sequence[tuple[int, int]], cap: int
                ) -> list[Detections]:
        """Class-aware NMS of every image at once (an image is its own group, as a label is), the cap, and
        the official BoxList.resize to each original image (x scaled by w0/w, y by h0/h)."""
        b = boxes.shape[0]
        image = torch.arange(b, device=boxes.device)[:, None].expand_as(labels)[valid]  # [N] image-major
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]  # [N, 4], [N], [N]
        if self.nms_thresh > 0:  # official boxlist_ml_nms returns everything when nms_thresh <= 0
            groups = image * (int(labels.max()) + 1 if len(labels) else 1) + labels
            keep = batched_nms(boxes, scores, groups, self.nms_thresh)  # best first; ties: input order
        else:
            keep = scores.argsort(descending=True, stable=True)
        keep = keep[image[keep].argsort(stable=True)]  # grouped by image, still best first within one
        counts = torch.bincount(image[keep], minlength=b).tolist()
        scale = boxes.new_tensor([[w0 / w, h0 / h, w0 / w, h0 / h]
                                  for (h, w), (h0, w0) in zip(image_sizes, original_sizes)])  # [B, 4]
        out = []
        for ids in keep.split(counts):  # a loop over images
            if cap > 0:
                ids = ids[:cap]
            out.append(Detections(boxes_xyxy=boxes[ids] * scale[image[ids]], scores=scores[ids],
                                  labels=labels[ids].long()))
        return out


def _image_outputs(outputs: HeadOutputs, i: int) -> HeadOutputs:
    """Image i of a batch's head outputs, as a batch of one."""
    return HeadOutputs(logits=[x[i:i + 1] for x in outputs.logits], bbox_reg=[x[i:i + 1] for x in outputs.bbox_reg],
                       centerness=[x[i:i + 1] for x in outputs.centerness])
