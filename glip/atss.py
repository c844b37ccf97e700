"""ATSS anchor assignment (Zhang et al. 2020), as the official ATSSLossComputation
(maskrcnn_benchmark/modeling/rpn/loss.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from glip.ops.boxes import box_iou


def atss_assign(anchors_per_level: Sequence[Tensor], gt_boxes_xyxy: Tensor, topk: int = 9) -> Tensor:
    """Matched gt index per anchor (all levels concatenated), -1 for negatives. LongTensor [A].

    Per gt: on every level take the `topk` anchors nearest in centre distance; the IoU threshold
    is mean + std (torch.std, unbiased) of those candidates' legacy IoUs; a candidate is positive if
    its IoU >= threshold and its centre lies inside the gt (min(l, t, r, b) > 0.01). An anchor that
    is positive for several gts goes to the one with the highest IoU (first one on exact ties).
    """
    if len(anchors_per_level) == 0:
        raise ValueError("atss_assign needs at least one level of anchors")
    if gt_boxes_xyxy.dim() != 2 or gt_boxes_xyxy.shape[1] != 4:
        raise ValueError(f"gt_boxes_xyxy must be [G, 4], got {tuple(gt_boxes_xyxy.shape)}")
    anchors = torch.cat(list(anchors_per_level), dim=0)  # [A, 4]
    num_anchors, num_gt = anchors.shape[0], gt_boxes_xyxy.shape[0]
    matched = torch.full((num_anchors,), -1, dtype=torch.long, device=anchors.device)
    if num_gt == 0 or num_anchors == 0:
        return matched
    gt = gt_boxes_xyxy.to(anchors)
    ious = box_iou(anchors, gt)  # [A, G]

    anchor_ctr = (anchors[:, :2] + anchors[:, 2:]) / 2  # [A, 2]
    gt_ctr = (gt[:, :2] + gt[:, 2:]) / 2  # [G, 2]
    distances = (anchor_ctr[:, None, :] - gt_ctr[None, :, :]).pow(2).sum(-1).sqrt()  # [A, G]

    candidates = []
    start = 0
    for level_anchors in anchors_per_level:  # a loop over the (5) levels only
        end = start + level_anchors.shape[0]
        k = min(topk, end - start)
        if k > 0:
            _, idx = distances[start:end].topk(k, dim=0, largest=False)  # [k, G]
            candidates.append(idx + start)
        start = end
    cand = torch.cat(candidates, dim=0)  # [C, G] anchor indices per gt
    gt_idx = torch.arange(num_gt, device=anchors.device)
    cand_ious = ious[cand, gt_idx[None, :]]  # [C, G]
    thresh = cand_ious.mean(0) + cand_ious.std(0)  # [G], unbiased std as the official code
    is_pos = cand_ious >= thresh[None, :]

    cand_ctr = anchor_ctr[cand]  # [C, G, 2]
    ltrb = torch.stack((cand_ctr[..., 0] - gt[:, 0], cand_ctr[..., 1] - gt[:, 1],
                        gt[:, 2] - cand_ctr[..., 0], gt[:, 3] - cand_ctr[..., 1]), dim=-1)  # [C, G, 4]
    is_pos &= ltrb.min(dim=-1).values > 0.01

    # IoU where (anchor, gt) is a positive pair, -inf elsewhere; the best gt wins
    pos_iou = torch.full_like(ious, -float("inf"))  # [A, G]
    gcols = gt_idx[None, :].expand_as(cand)
    pos_iou[cand[is_pos], gcols[is_pos]] = ious[cand[is_pos], gcols[is_pos]]
    best_iou, best_gt = pos_iou.max(dim=1)  # [A]
    return torch.where(best_iou > -float("inf"), best_gt, matched)
