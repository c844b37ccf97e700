"""The GLIP grounding losses: token focal loss, GIoU box loss, centerness BCE (official
maskrcnn_benchmark/modeling/rpn/loss.py, ATSSLossComputation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from glip.atss import atss_assign
from glip.box_coder import BoxCoder
from glip.head_outputs import HeadOutputs
from glip.structures import TrainTarget


def token_sigmoid_focal_loss(logits: Tensor, targets: Tensor, text_mask: Tensor, alpha: float = 0.25,
                             gamma: float = 2.0) -> Tensor:
    """Summed binary focal loss over (anchor, token) pairs whose token is real text.

    logits, targets [B, A, T] (targets in {0, 1}); text_mask [B, T] (attention mask: > 0 = text).
    Official token_sigmoid_binary_focal_loss: positions with text_mask == 0 are dropped before the
    loss; alpha < 0 disables the alpha weighting.
    """
    if logits.dim() != 3 or targets.shape != logits.shape:
        raise ValueError(f"logits and targets must both be [B, A, T], got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")
    if text_mask.shape != (logits.shape[0], logits.shape[2]):
        raise ValueError(f"text_mask must be [B, T] = {(logits.shape[0], logits.shape[2])}, "
                         f"got {tuple(text_mask.shape)}")
    keep = (text_mask > 0)[:, None, :].expand_as(logits)  # [B, A, T]
    x = logits[keep]
    t = targets[keep].to(x.dtype)
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.sum()


def soft_token_loss(logits: Tensor, targets: Tensor, text_mask: Tensor) -> Tensor:
    """Summed soft-token cross-entropy over positive anchors (MDETR's "soft token prediction").

    logits [P, T] of the positive anchors, targets [P, T] their matched phrase's positive-map rows,
    text_mask [P, T] (> 0 = real text). Each row is a softmax over the real tokens against the target
    spread evenly over the phrase's tokens. Unlike the per-token sigmoid it pushes the other words down
    from the first step, which lets a model trained from scratch separate classes early (README, "The
    synthetic world"); 0 weight (the official setting) leaves GLIP's loss unchanged.
    """
    real = text_mask > 0
    target = targets * real
    target = target / target.sum(-1, keepdim=True).clamp_min(1e-6)  # [P, T], rows sum to 1
    log_p = torch.log_softmax(logits.masked_fill(~real, -float("inf")), dim=-1)
    return -(target * log_p.masked_fill(~real, 0.0)).sum()


def centerness_targets(anchors_xyxy: Tensor, gt_xyxy: Tensor) -> Tensor:
    """[N] sqrt(min(l, r)/max(l, r) * min(t, b)/max(t, b)) of each anchor centre inside its gt box."""
    cx = (anchors_xyxy[:, 0] + anchors_xyxy[:, 2]) / 2
    cy = (anchors_xyxy[:, 1] + anchors_xyxy[:, 3]) / 2
    lr = torch.stack((cx - gt_xyxy[:, 0], gt_xyxy[:, 2] - cx), dim=1)  # [N, 2]
    tb = torch.stack((cy - gt_xyxy[:, 1], gt_xyxy[:, 3] - cy), dim=1)  # [N, 2]
    return torch.sqrt(lr.min(dim=1).values / lr.max(dim=1).values * (tb.min(dim=1).values / tb.max(dim=1).values))


def giou_loss(pred_xyxy: Tensor, target_xyxy: Tensor) -> Tensor:
    """Element-wise 1 - GIoU [N] as the official ATSSLossComputation.GIoULoss.

    Continuous areas (no +1), the predicted x2/y2 raised to at least x1/y1, and 1e-7 added to the
    union and the enclosing area.
    """
    px1, py1 = pred_xyxy[:, 0], pred_xyxy[:, 1]
    px2 = torch.maximum(px1, pred_xyxy[:, 2])
    py2 = torch.maximum(py1, pred_xyxy[:, 3])
    tx1, ty1, tx2, ty2 = target_xyxy.unbind(1)
    pred_area = (px2 - px1) * (py2 - py1)
    target_area = (tx2 - tx1) * (ty2 - ty1)
    iw = torch.minimum(px2, tx2) - torch.maximum(px1, tx1)
    ih = torch.minimum(py2, ty2) - torch.maximum(py1, ty1)
    inter = torch.where((iw > 0) & (ih > 0), iw * ih, torch.zeros_like(iw))
    enclosing = (torch.maximum(px2, tx2) - torch.minimum(px1, tx1)) * (
        torch.maximum(py2, ty2) - torch.minimum(py1, ty1)) + 1e-7
    union = pred_area + target_area - inter + 1e-7
    giou = inter / union - (enclosing - union) / enclosing
    return 1 - giou


def _global_sum(value: Tensor) -> float:
    """Sum over processes when torch.distributed is running (the official reduce_sum), else itself."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        return float(value) / dist.get_world_size()
    return float(value)


class GLIPLoss(nn.Module):
    """ATSS assignment + token focal loss + centerness-weighted GIoU + centerness BCE.

    Returns {"loss_token", "loss_reg", "loss_centerness"} (the official loss_dot_product_token,
    loss_reg x REG_LOSS_WEIGHT, loss_centerness). With torch.distributed running, the normalisers
    (#positives, sum of centerness targets) are averaged over processes as in the official code.
    soft_token_weight > 0 adds "loss_soft_token" (soft_token_loss / #positives); not part of official GLIP.
    """

    def __init__(self, topk: int = 9, alpha: float = 0.25, gamma: float = 2.0, reg_loss_weight: float = 2.0,
                 box_coder: BoxCoder | None = None, soft_token_weight: float = 0.0) -> None:
        super().__init__()
        self.topk = topk
        self.alpha = alpha
        self.gamma = gamma
        self.reg_loss_weight = reg_loss_weight
        self.soft_token_weight = soft_token_weight
        self.box_coder = box_coder or BoxCoder()

    def forward(self, head_outputs: HeadOutputs, anchors_per_level: Sequence[Tensor],
                targets: Sequence[TrainTarget], text_mask: Tensor) -> dict[str, Tensor]:
        # losses in at least fp32, also when the head ran in bf16/fp16 under autocast
        dtype = torch.promote_types(head_outputs.logits[0].dtype, torch.float32)
        logits = torch.cat(head_outputs.logits, dim=1).to(dtype)  # [B, A, T]
        bbox_reg = torch.cat(head_outputs.bbox_reg, dim=1).to(dtype)  # [B, A, 4]
        centerness = torch.cat(head_outputs.centerness, dim=1).to(dtype)  # [B, A]
        anchors_per_level = [a.to(dtype) for a in anchors_per_level]
        anchors = torch.cat(anchors_per_level, dim=0)  # [A, 4]
        b, a, t = logits.shape
        if len(targets) != b:
            raise ValueError(f"got {len(targets)} targets for a batch of {b} images")
        if anchors.shape[0] != a:
            raise ValueError(f"anchors cover {anchors.shape[0]} locations but the head predicted {a}")

        token_targets = logits.new_zeros(b, a, t)  # unmatched anchors: no positive token
        pos_img, pos_anchor, pos_gt = [], [], []
        for i, target in enumerate(targets):  # a loop over images
            boxes = target.boxes_xyxy.to(anchors)
            pmap = target.positive_map.to(logits)
            if pmap.shape != (boxes.shape[0], t):
                raise ValueError(f"target {i}: positive_map must be [{boxes.shape[0]}, {t}] (boxes x tokens), "
                                 f"got {tuple(pmap.shape)}")
            matched = atss_assign(anchors_per_level, boxes, self.topk)  # [A]
            pos = (matched >= 0).nonzero().squeeze(1)  # [P_i]
            token_targets[i, pos] = pmap[matched[pos]]
            pos_img.append(torch.full_like(pos, i))
            pos_anchor.append(pos)
            pos_gt.append(boxes[matched[pos]])
        pos_img_t, pos_anchor_t = torch.cat(pos_img), torch.cat(pos_anchor)
        gt_pos = torch.cat(pos_gt)  # [P, 4]
        num_pos = max(_global_sum(torch.tensor(float(pos_anchor_t.numel()), device=logits.device)), 1.0)

        loss_token = token_sigmoid_focal_loss(logits, token_targets, text_mask, self.alpha, self.gamma) / num_pos

        reg_pos = bbox_reg[pos_img_t, pos_anchor_t]  # [P, 4]
        ctr_pos = centerness[pos_img_t, pos_anchor_t]  # [P]
        anchors_pos = anchors[pos_anchor_t]  # [P, 4]
        if pos_anchor_t.numel() > 0:
            # the official regresses against decode(encode(gt)) (same box up to the dw/dh clamp)
            gt_dec = self.box_coder.decode(self.box_coder.encode(gt_pos, anchors_pos), anchors_pos)
            ctr_t = centerness_targets(anchors_pos, gt_dec)  # [P]
            sum_ctr = _global_sum(ctr_t.sum().detach())
            giou = giou_loss(self.box_coder.decode(reg_pos, anchors_pos), gt_dec)
            reg = (giou * ctr_t).sum() if float(ctr_t.sum()) > 0 else giou.sum()
            loss_reg = reg / sum_ctr
            loss_ctr = F.binary_cross_entropy_with_logits(ctr_pos, ctr_t, reduction="sum") / num_pos
        else:
            _global_sum(torch.zeros((), device=logits.device))  # keep the collective calls paired
            loss_reg = reg_pos.sum()
            loss_ctr = ctr_pos.sum()
        losses = {"loss_token": loss_token, "loss_reg": loss_reg * self.reg_loss_weight, "loss_centerness": loss_ctr}
        if self.soft_token_weight > 0:
            pos_logits = logits[pos_img_t, pos_anchor_t]  # [P, T]
            soft = soft_token_loss(pos_logits, token_targets[pos_img_t, pos_anchor_t], text_mask[pos_img_t])
            losses["loss_soft_token"] = soft * self.soft_token_weight / num_pos
        return losses
