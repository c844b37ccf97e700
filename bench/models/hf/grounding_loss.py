"""Grounding DINO's training loss with each image's target phrases taken from its own caption.

transformers 5.x (loss/loss_grounding_dino.py, GroundingDinoImageLoss._get_target_classes_one_hot)
concatenates the batch's label maps (image i: [P_i, T], one row per phrase of its caption) and looks
image i's class labels up at an offset of len(label_maps[i]), its own phrase count, where the rows of
image i start at P_0 + ... + P_{i-1}. With one caption for the whole batch every label map is the same,
so any multiple of P picks the same rows and the result is right at every batch size; with a caption
per image (sampled training captions, bench.data.od_captions) image i >= 1 is given another image's
phrase tokens as its classification target. The Hungarian matcher and the box losses index each
image's own label map and targets, so only this one-hot is wrong.

`PerImagePhraseLoss` overrides that one method; `grounding_dino_loss` is transformers'
GroundingDinoForObjectDetectionLoss with it as the criterion (same matcher, terms and weights, summed
in the same order), and `install` sets it as one model's `loss_function` (transformers picks the loss
per model from LOSS_MAPPING by class name, for Grounding DINO and MM Grounding DINO alike; the
instance's `loss_function` setter overrides it for that model only, nothing global is patched).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.loss.loss_grounding_dino import (
    GroundingDinoForObjectDetectionLoss,
    GroundingDinoHungarianMatcher,
    GroundingDinoImageLoss,
)

# transformers' weight of the classification term (a constant there, not a config field)
CLASS_LOSS_WEIGHT = 2.0


class PerImagePhraseLoss(GroundingDinoImageLoss):
    """GroundingDinoImageLoss whose classification target for image i comes from image i's own label map."""

    def _get_target_classes_one_hot(self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]],
                                    indices: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """[B, Q, T] 0/1: each matched query marks its target phrase's tokens in its image's caption."""
        logits = outputs["logits"]  # [B, Q, T]
        rows = [label_map[target["class_labels"][j]]  # [matched_i, T]
                for label_map, target, (_, j) in zip(outputs["label_maps"], targets, indices)]
        onehot = torch.zeros_like(logits, dtype=torch.long)
        onehot[self._get_source_permutation_idx(indices)] = torch.cat(rows).to(torch.long)
        return onehot


def grounding_dino_loss(logits: torch.Tensor, labels: list[dict[str, torch.Tensor]], device: Any,
                        pred_boxes: torch.Tensor, config: Any, label_maps: tuple[torch.Tensor, ...],
                        text_mask: torch.Tensor, outputs_class: torch.Tensor | None = None,
                        outputs_coord: torch.Tensor | None = None, encoder_logits: torch.Tensor | None = None,
                        encoder_pred_boxes: torch.Tensor | None = None) -> tuple[torch.Tensor, dict, list | None]:
    """(loss, loss terms, auxiliary outputs) as transformers' Grounding DINO loss, criterion corrected."""
    matcher = GroundingDinoHungarianMatcher(class_cost=config.class_cost, bbox_cost=config.bbox_cost,
                                            giou_cost=config.giou_cost)
    criterion = PerImagePhraseLoss(matcher=matcher, focal_alpha=config.focal_alpha,
                                   losses=["labels", "boxes", "cardinality"]).to(device)
    text = {"label_maps": label_maps, "text_mask": text_mask}
    outputs = {"logits": logits, "pred_boxes": pred_boxes, **text}
    auxiliary = None
    if config.auxiliary_loss:  # every decoder layer but the last, scored against the same targets
        auxiliary = [{"logits": c, "pred_boxes": b, **text} for c, b in zip(outputs_class[:-1], outputs_coord[:-1])]
        outputs["auxiliary_outputs"] = auxiliary
    terms = criterion(outputs, labels)
    if config.two_stage:
        encoder = criterion({"logits": encoder_logits, "pred_boxes": encoder_pred_boxes, **text}, labels)
        terms.update({f"{k}_enc": v for k, v in encoder.items()})
    weights = {"loss_ce": CLASS_LOSS_WEIGHT, "loss_bbox": config.bbox_loss_coefficient,
               "loss_giou": config.giou_loss_coefficient}
    suffixes = [""] + (["_enc"] if config.two_stage else [])
    suffixes += [f"_{i}" for i in range(config.decoder_layers - 1)] if config.auxiliary_loss else []
    weights = {k + s: w for s in suffixes for k, w in weights.items()}
    loss = sum(terms[k] * weights[k] for k in terms if k in weights)  # in the terms' order, as transformers
    return loss, terms, auxiliary


def install(model: Any) -> None:
    """Make `model` (a Grounding DINO / MM Grounding DINO detector) train with `grounding_dino_loss`.

    Refuses a model whose loss is not transformers' Grounding DINO loss: the override would then replace
    a loss it was not written against.
    """
    current = model.loss_function
    if current is not GroundingDinoForObjectDetectionLoss and current is not grounding_dino_loss:
        raise ValueError(f"{type(model).__name__} trains with {getattr(current, '__name__', current)}, not "
                         "transformers' GroundingDinoForObjectDetectionLoss: the per-image phrase fix does not apply")
    model.loss_function = grounding_dino_loss
