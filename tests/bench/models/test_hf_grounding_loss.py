"""The corrected Grounding DINO loss (bench.models.hf.grounding_loss): each image's classification target comes
from its own caption's label map. Built against transformers' own label maps (build_label_maps on real
token ids) and its own loss function, on tiny random models."""

from __future__ import annotations

import pytest
import torch
from transformers.loss.loss_grounding_dino import (
    GroundingDinoForObjectDetectionLoss,
    GroundingDinoHungarianMatcher,
    GroundingDinoImageLoss,
)
from transformers.models.grounding_dino.modeling_grounding_dino import build_label_maps

from bench.models.hf.grounding_loss import PerImagePhraseLoss, grounding_dino_loss, install
from bench.testing.hf import save_tiny

T, Q = 32, 6  # text positions, queries
CAPTIONS = ["red circle. blue square.", "star. ring. cross. green triangle.", "yellow star. red ring. blue cross."]


def _tokenizer(tmp_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(save_tiny("grounding-dino", tmp_path / "gd"))


def _label_maps(tokenizer, captions):
    """transformers' label maps of `captions` (one [phrases, T] 0/1 tensor per caption), as its forward builds them."""
    ids = tokenizer(captions, padding="max_length", max_length=T, return_tensors="pt")["input_ids"]
    return build_label_maps(torch.zeros(len(captions), Q, T), ids)


def _matching():
    """Per image: class labels of its boxes, and which query is matched to which box (as the matcher returns)."""
    targets = [{"class_labels": torch.tensor([1, 0])}, {"class_labels": torch.tensor([3, 1, 2])},
               {"class_labels": torch.tensor([2, 0])}]
    indices = [(torch.tensor([4, 1]), torch.tensor([0, 1])), (torch.tensor([0, 5, 2]), torch.tensor([2, 0, 1])),
               (torch.tensor([3, 0]), torch.tensor([1, 0]))]
    return targets, indices


def _brute_force(label_maps, targets, indices):
    """[B, Q, T]: query q of image b marks the tokens of the phrase its matched box names in image b's caption."""
    out = torch.zeros(len(label_maps), Q, T, dtype=torch.long)
    for b, (label_map, target, (queries, boxes)) in enumerate(zip(label_maps, targets, indices)):
        for q, j in zip(queries.tolist(), boxes.tolist()):
            out[b, q] = label_map[target["class_labels"][j]]
    return out


def _one_hot(criterion_class, label_maps, targets, indices):
    criterion = criterion_class(matcher=None, focal_alpha=0.25, losses=["labels"])
    outputs = {"logits": torch.zeros(len(label_maps), Q, T), "label_maps": label_maps}
    return criterion._get_target_classes_one_hot(outputs, targets, indices)


def test_the_one_hot_takes_each_image_s_phrases_from_its_own_caption(tmp_path):
    """Three images with 2, 4 and 3 phrases: the corrected one-hot is the per-image construction; transformers'
    (image i's labels offset by its own phrase count) gives images 1 and 2 other images' tokens."""
    label_maps = _label_maps(_tokenizer(tmp_path), CAPTIONS)
    assert [len(m) for m in label_maps] == [2, 4, 3]
    targets, indices = _matching()
    expected = _brute_force(label_maps, targets, indices)
    assert expected.sum() > 0
    assert torch.equal(_one_hot(PerImagePhraseLoss, label_maps, targets, indices), expected)
    original = _one_hot(GroundingDinoImageLoss, label_maps, targets, indices)
    assert torch.equal(original[0], expected[0])
    assert not torch.equal(original[1], expected[1]) and not torch.equal(original[2], expected[2])


def test_with_one_caption_for_the_batch_transformers_one_hot_is_already_right(tmp_path):
    """The fixed-caption fine-tuning (batch 4 by default): every label map is the same, so transformers' offset
    picks the same rows at any batch size and the correction changes no number there."""
    label_maps = _label_maps(_tokenizer(tmp_path), [CAPTIONS[1]] * 3)
    targets, indices = _matching()
    expected = _brute_force(label_maps, targets, indices)
    assert torch.equal(_one_hot(GroundingDinoImageLoss, label_maps, targets, indices), expected)
    assert torch.equal(_one_hot(PerImagePhraseLoss, label_maps, targets, indices), expected)


def test_the_matcher_already_indexes_each_image_s_own_label_map(tmp_path):
    """GroundingDinoHungarianMatcher's class cost reads label_maps[i][class_labels of image i]: the same
    matching with the three captions as with each image alone (no offsets there to correct)."""
    label_maps = _label_maps(_tokenizer(tmp_path), CAPTIONS)
    targets, _ = _matching()
    torch.manual_seed(0)
    logits, boxes = torch.randn(3, Q, T), torch.rand(3, Q, 4) * 0.5 + 0.25
    targets = [{**t, "boxes": torch.rand(len(t["class_labels"]), 4) * 0.5 + 0.25} for t in targets]
    matcher = GroundingDinoHungarianMatcher(class_cost=2.0, bbox_cost=5.0, giou_cost=2.0)
    batch = matcher({"logits": logits, "pred_boxes": boxes, "label_maps": label_maps}, targets)
    for b in range(3):
        [alone] = matcher({"logits": logits[b:b + 1], "pred_boxes": boxes[b:b + 1], "label_maps": label_maps[b:b + 1]},
                          targets[b:b + 1])
        assert all(torch.equal(x, y) for x, y in zip(batch[b], alone))


def _forward(model, tokenizer, captions, loss_function):
    """The model's (loss, loss terms) on 3 fixed random images with one caption per image."""
    model.loss_function = loss_function
    text = tokenizer(captions, padding=True, return_tensors="pt")
    torch.manual_seed(1)
    pixels = torch.randn(len(captions), 3, 64, 64)
    labels = [{"class_labels": torch.tensor([0, 1]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2]])}
              for _ in captions]
    with torch.no_grad():
        out = model(pixel_values=pixels, labels=labels, **text)
    return out.loss, out.loss_dict


@pytest.mark.parametrize("family", ["grounding-dino", "mm-grounding-dino"])
def test_the_corrected_loss_is_transformers_loss_where_captions_agree_and_differs_where_they_do_not(family, tmp_path):
    """Grounding DINO and MM Grounding DINO both train with transformers' GroundingDinoForObjectDetectionLoss;
    ours gives bit-identical terms and total on a batch of 3 sharing a caption (same matcher, terms, weights
    and summing order), and another classification loss when the 3 captions differ."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoTokenizer

    folder = save_tiny(family, tmp_path / family)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(folder).eval()
    model.config.auxiliary_loss = True  # every term transformers can add: decoder layers and the encoder's
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.two_stage and model.loss_function is GroundingDinoForObjectDetectionLoss
    same = [CAPTIONS[0]] * 3
    ours, theirs = (_forward(model, tokenizer, same, fn) for fn in (grounding_dino_loss, GroundingDinoForObjectDetectionLoss))
    assert ours[1].keys() == theirs[1].keys() and {"loss_ce_0", "loss_ce_enc"} <= ours[1].keys()
    assert all(torch.equal(ours[1][k], theirs[1][k]) for k in ours[1]) and torch.equal(ours[0], theirs[0])
    ours, theirs = (_forward(model, tokenizer, CAPTIONS, fn) for fn in (grounding_dino_loss, GroundingDinoForObjectDetectionLoss))
    assert torch.equal(ours[1]["loss_bbox"], theirs[1]["loss_bbox"])  # the same matching and boxes
    assert not torch.equal(ours[1]["loss_ce"], theirs[1]["loss_ce"])


def test_the_adapter_installs_the_loss_on_its_model_only(tmp_path):
    """Loading hf:DIR sets the corrected loss on that model instance; transformers' class keeps its own."""
    from transformers import AutoModelForZeroShotObjectDetection

    from bench.models.hf import build_hf_adapter

    folder = save_tiny("grounding-dino", tmp_path / "gd")
    adapter = build_hf_adapter(f"hf:{folder}")
    assert adapter.loaded.model.loss_function is grounding_dino_loss
    assert AutoModelForZeroShotObjectDetection.from_pretrained(folder).loss_function is GroundingDinoForObjectDetectionLoss


def test_install_refuses_a_model_whose_loss_is_another():
    class Other(torch.nn.Module):
        loss_function = staticmethod(lambda *a, **k: None)

    with pytest.raises(ValueError, match="GroundingDinoForObjectDetectionLoss"):
        install(Other())
