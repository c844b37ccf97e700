"""GLIP end to end on glip-tiny: parameter counts and groups, late vs deep, prompt offset, losses and
gradients, detect/predict in original image coordinates, input conversion and clear errors."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from glip.config import get_preset
from glip.fusion import BertEncoderLayer, VLFuse
from glip.model import GLIP, PARAMETER_GROUPS, phrase_spans
from glip.structures import Detections, TrainTarget


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GLIP(get_preset("glip-tiny")).eval()
    with torch.no_grad():
        m.head.bias0.fill_(4.0)  # every token probability ~0.98: detections for every phrase
    return m


def image(h=50, w=70, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("preset,expected", [("glip-t-a", 151.4e6), ("glip-t", 231.8e6), ("glip-l", 430.4e6)])
def test_parameter_counts(preset, expected):
    """Counts from the official constructors' shapes (language backbone included; they exclude prompt tuning's
    tunable_linear)."""
    with torch.device("meta"):
        m = GLIP(get_preset(preset))
    total = sum(p.numel() for p in m.parameters())
    assert total - m.prompt_offset.numel() == pytest.approx(expected, rel=5e-3)
    assert m.head.cls_logits.weight.shape[0] == 80  # official default NUM_CLASSES 81 -> 80 channels


def test_parameter_groups_partition_every_parameter():
    m = GLIP(get_preset("glip-tiny"))
    groups = m.parameter_groups()
    assert tuple(groups) == PARAMETER_GROUPS
    names = [n for g in groups.values() for n in g]
    assert sorted(names) == sorted(n for n, _ in m.named_parameters()) and len(names) == len(set(names))
    assert all(n.startswith(("backbone.body.swin.embeddings", "backbone.body.swin.encoder.layers.0."))
               for n in groups["backbone_stem"])
    assert "backbone.body.swin.embeddings.patch_embeddings.projection.weight" in groups["backbone_stem"]
    assert groups["prompt"] == ["prompt_offset"]
    assert any("b_attn" in n for n in groups["fusion"]) and any("attention.self" in n for n in groups["fusion"])
    assert "head.bias0" in groups["head"] and "head.dyhead_tower.2.offset.weight" in groups["head"]


def test_late_variant_has_no_fusion_parameters():
    late = GLIP(replace(get_preset("glip-tiny"), fusion="late"))
    assert late.parameter_groups()["fusion"] == []
    assert not any(isinstance(m, VLFuse | BertEncoderLayer) for m in late.modules() if m is not late.language)
    with torch.device("meta"):
        t, ta = GLIP(get_preset("glip-t")), GLIP(replace(get_preset("glip-t"), fusion="late"))
    diff = sum(p.numel() for p in t.parameters()) - sum(p.numel() for p in ta.parameters())
    assert diff == pytest.approx(6 * (6.30e6 + 7.09e6), rel=5e-3)  # 6 x (VLFuse + BertEncoderLayer)


def test_prompt_offset_is_added_to_hidden_and_embedded():
    torch.manual_seed(0)
    m = GLIP(get_preset("glip-tiny")).eval()
    base = m.encode_text(["red square. blue circle"])
    with torch.no_grad():
        m.prompt_offset.normal_()
    shifted = m.encode_text(["red square. blue circle"])
    t = base.hidden.shape[1]
    torch.testing.assert_close(shifted.hidden - base.hidden, m.prompt_offset[:t].expand_as(base.hidden))
    torch.testing.assert_close(shifted.embedded - base.embedded, m.prompt_offset[:t].expand_as(base.hidden))


def test_offset_rows_pick_table_rows_per_token_and_only_those_rows_get_gradients():
    """offset_rows 0..T-1 is the official per-position path bit for bit; other rows add those rows (-1: none);
    a table of another size (class-anchored) needs rows; the loss reaches only the rows a caption used."""
    torch.manual_seed(0)
    m = GLIP(get_preset("glip-tiny")).eval()
    with torch.no_grad():
        m.prompt_offset.normal_()
    captions = ["red square. blue circle", "blue circle"]
    official = m.encode_text(captions)
    t = official.hidden.shape[1]
    by_position = m.encode_text(captions, offset_rows=torch.arange(t).expand(2, -1))
    assert torch.equal(by_position.hidden, official.hidden) and torch.equal(by_position.embedded, official.embedded)
    rows = torch.tensor([[5, 7, -1] + [2] * (t - 3), [-1] * t])  # [B, T]
    picked = m.encode_text(captions, offset_rows=rows)
    zero = official.hidden - m.prompt_offset[:t]  # the text features without any offset
    expected = torch.nn.functional.pad(m.prompt_offset, (0, 0, 1, 0))[rows + 1]
    torch.testing.assert_close(picked.hidden - zero, expected)
    m.prompt_offset = torch.nn.Parameter(torch.zeros(9, m.config.text_hidden))  # a class-anchored table
    with pytest.raises(ValueError, match="pass offset_rows"):
        m.encode_text(captions)
    with pytest.raises(ValueError, match="outside -1..8"):
        m.encode_text(captions, offset_rows=torch.full((2, t), 9))
    batch = m.train().preprocess([image(64, 96, 1), image(64, 96, 2)])
    targets = [TrainTarget(torch.tensor([[5.0, 5.0, 40.0, 30.0]]), torch.eye(1, 256)[[0]].roll(1, 1))] * 2
    rows = torch.full((2, 256), -1)
    rows[:, 1:3] = torch.tensor([4, 6])
    m(batch, captions, targets, offset_rows=rows)["loss_token"].backward()
    used = m.prompt_offset.grad.abs().sum(1) > 0
    assert used.nonzero().flatten().tolist() == [4, 6]


def test_losses_and_gradients():
    torch.manual_seed(0)
    m = GLIP(get_preset("glip-tiny")).train()
    batch = m.preprocess([image(64, 96, 1), image(64, 96, 2)])
    pm = torch.zeros(1, 256)
    pm[0, 1:3] = 1
    targets = [TrainTarget(torch.tensor([[10.0, 8.0, 50.0, 40.0]]), pm), TrainTarget(torch.tensor([[0.0, 0.0, 30.0, 60.0]]), pm)]
    losses = m(batch, ["red square", "red square"], targets)
    assert set(losses) == {"loss_token", "loss_reg", "loss_centerness"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    for name in ["backbone.body.swin.encoder.layers.3.blocks.0.attention.q_proj.weight", "backbone.fpn.fpn_inner2.weight",
                 "language.model.encoder.layer.0.attention.self.query.weight", "head.dyhead_tower.0.b_attn.gamma_v",
                 "head.dyhead_tower.2.DyConv.0.conv.weight", "head.bias0", "prompt_offset"]:
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert m.head.cls_logits.weight.grad is None


def test_detect_restores_training_mode_and_positive_map_width(model):
    batch = model.preprocess([image()])
    pm = torch.zeros(2, 300)
    pm[0, 1:3] = 1
    pm[1, 4:6] = 1
    model.train()
    dets = model.detect(batch, ["red square. blue circle"], [pm])
    assert model.training
    model.eval()
    assert isinstance(dets[0], Detections) and len(dets[0]) > 0
    assert set(dets[0].labels.tolist()) <= {0, 1}
    pm[0, 280] = 1
    with pytest.raises(ValueError, match="max_query_len"):
        model.detect(batch, ["red square. blue circle"], [pm])


def test_predict_returns_original_coordinates(model):
    img = image(50, 70)
    dets = model.predict(img, ["red square", "blue circle"])
    assert len(dets) > 0 and set(dets.labels.tolist()) == {0, 1}
    assert (dets.scores[:-1] >= dets.scores[1:]).all()
    # the same head outputs post-processed in model-input pixels, scaled by the resize ratios by hand
    batch = model.preprocess([img])
    (h_in, w_in), (h0, w0) = batch.image_sizes[0], batch.original_sizes[0]
    assert (h0, w0) == (50, 70) and (h_in, w_in) != (h0, w0)
    caption, pm, _ = model._prompt_chunks(["red square", "blue circle"])[0]
    with torch.no_grad():
        feats = model.encode_images(batch)
        out = model.forward_head(feats, model.encode_text([caption]))
        ref = model.postprocessor(out, model.anchors(feats), [pm], batch.image_sizes, batch.image_sizes)[0]
    scale = torch.tensor([w0 / w_in, h0 / h_in, w0 / w_in, h0 / h_in])
    torch.testing.assert_close(dets.boxes_xyxy, ref.boxes_xyxy * scale)
    assert dets.boxes_xyxy[:, 2].max() <= w0 and dets.boxes_xyxy[:, 3].max() <= h0
    assert len(model.predict(img, ["red square"], threshold=1.01)) == 0


def test_grayscale_and_rgba_are_converted(model):
    rgb = Image.fromarray(image())
    gray, rgba = rgb.convert("L"), rgb.convert("RGBA")
    a = model.preprocess([gray]).tensor
    b = model.preprocess([gray.convert("RGB")]).tensor
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(model.preprocess([rgba]).tensor, model.preprocess([rgb]).tensor)
    torch.testing.assert_close(model.preprocess([np.asarray(gray)]).tensor, a)
    assert len(model.predict(gray, "red square")) > 0 and len(model.predict(rgba, "red square")) > 0
    with pytest.raises(ValueError, match="float in"):
        model.preprocess([np.full((8, 8, 3), 7.5)])


@pytest.mark.parametrize("prompt", ["", "   ", " . . ", [], ["cat", ""], ("", [(0, 1)])])
def test_empty_prompt_is_a_clear_error(model, prompt):
    with pytest.raises(ValueError, match="empty"):
        model.predict(image(), prompt)


def test_overlong_caption_in_detect_is_a_clear_error(model):
    caption = ". ".join(["red square"] * 150)
    batch = model.preprocess([image()])
    with pytest.raises(ValueError, match="max_len=256"):
        model.detect(batch, [caption], [torch.zeros(1, 256)])


def test_long_prompts_are_chunked(model):
    names = [f"{c} {s}" for c in ["red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white"]
             for s in ["square", "circle", "triangle", "star", "ring", "cross", "diamond", "bar", "box", "disk"]]
    chunks = model._prompt_chunks(names)
    assert len(chunks) >= 2 and sorted(i for _, _, idx in chunks for i in idx) == list(range(100))
    dets = model.predict(image(), names)
    assert dets.labels.max() >= chunks[1][2][0]  # labels from a later chunk, mapped to the full name list
    long_caption = ". ".join(names)
    assert len(model.predict(image(), long_caption)) > 0


def test_caption_with_explicit_spans(model):
    caption = "a red square next to a blue circle"
    dets = model.predict(image(), (caption, [(2, 12), [(23, 34)]]))
    assert set(dets.labels.tolist()) <= {0, 1} and len(dets) > 0
    assert phrase_spans("cat. big dog .") == [(0, 3), (5, 12)]


def test_builtin_tokenizer_fits_the_embedding_table():
    m = GLIP(get_preset("glip-tiny"))
    assert len(m.tokenizer) <= m.config.text_vocab_size
    with pytest.raises(ValueError, match="text_vocab_size"):
        GLIP(get_preset("glip-tiny", text_vocab_size=50))
    with pytest.raises(ValueError, match="bert-base-uncased"):
        GLIP(get_preset("glip-tiny", vocab_words=None)).predict(image(), "cat")


def test_from_pretrained_with_a_local_text_encoder_dir(tmp_path):
    """text_encoder=<dir> loads BERT weights and tokenizer from a local directory (offline)."""
    from transformers import BertModel

    import glip
    from glip.model import bert_config, builtin_tokenizer

    cfg = get_preset("glip-tiny")

    torch.manual_seed(3)
    bert = BertModel(bert_config(cfg), add_pooling_layer=False)
    bert.save_pretrained(tmp_path / "bert")
    builtin_tokenizer(cfg).save_pretrained(tmp_path / "bert")
    m = glip.from_pretrained("glip-tiny", text_encoder=tmp_path / "bert")
    torch.testing.assert_close(m.language.model.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)
    assert m.tokenizer is not None and isinstance(m.predict(image(), "red square"), Detections)
    with pytest.raises(ValueError, match="hidden, layers, vocab"):
        glip.from_pretrained("glip-tiny", text_encoder=tmp_path / "bert", text_layers=2)
    with pytest.raises(ValueError, match="text_encoder"):
        glip.from_pretrained("glip-t")
