"""VLDyHead: tower layout for deep and late fusion, official module names, and the dot-product logits
exactly as the official VLDyHead.forward (maskrcnn_benchmark/modeling/rpn/vldyhead.py): normalise, /2,
project, bias from bias_lang and bias0, / exp(log_scale)."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from glip.config import get_preset
from glip.dyhead import DyConv
from glip.fusion import BertEncoderLayer, VLFuse
from glip.head import VLDyHead

B, T = 2, 256
SIZES = [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]


def make_inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(B, cfg.fpn_channels, h, w, generator=g) for h, w in SIZES]
    hidden = torch.randn(B, T, cfg.text_hidden, generator=g)
    mask = torch.zeros(B, T, dtype=torch.long)
    mask[0, :5] = 1
    mask[1, :9] = 1
    embedded = hidden * mask[..., None]
    return feats, hidden, embedded, mask


@pytest.fixture(scope="module")
def deep():
    torch.manual_seed(0)
    head = VLDyHead(get_preset("glip-tiny")).eval()
    with torch.no_grad():  # move the learnable scalars off their init so the formula is really tested
        head.log_scale.fill_(0.3)
        head.bias0.fill_(-1.2)
        head.bias_lang.normal_()
    return head


def test_tower_layout_deep_and_late():
    cfg = get_preset("glip-tiny", num_blocks=3)
    deep = VLDyHead(cfg)
    kinds = [type(m) for m in deep.dyhead_tower]
    # indices 3i, 3i+1, 3i+2 (official VLDyHead.__init__)
    assert kinds == [VLFuse, BertEncoderLayer, DyConv] * 3
    late = VLDyHead(replace(cfg, fusion="late"))
    assert [type(m) for m in late.dyhead_tower] == [DyConv] * 3


def test_official_prediction_layer_names_and_init():
    head = VLDyHead(get_preset("glip-tiny"))
    names = {n for n, _ in head.named_parameters()}
    for n in ["cls_logits.weight", "bbox_pred.weight", "centerness.bias", "scales.4.scale",
              "dot_product_projection_text.weight", "log_scale", "bias_lang", "bias0",
              "dyhead_tower.0.b_attn.gamma_v", "dyhead_tower.1.attention.self.query.weight",
              "dyhead_tower.2.relu.fc.2.weight"]:
        assert n in names, n
    assert not head.cls_logits.weight.requires_grad and not head.cls_logits.bias.requires_grad
    torch.testing.assert_close(head.bias0, torch.tensor([-4.59512]), atol=1e-4, rtol=0)
    assert head.log_scale.item() == 0.0 and not head.bias_lang.any()
    assert all(s.scale.item() == 1.0 for s in head.scales)


def test_logits_formula(deep):
    cfg = get_preset("glip-tiny")
    feats, hidden, embedded, mask = make_inputs(cfg)
    out = deep(feats, hidden, embedded, mask)
    fused_feats, fused_text = deep.tower(feats, hidden, mask)
    e = F.normalize(fused_text, dim=-1)
    proj = (e / 2.0) @ deep.dot_product_projection_text.weight.T + deep.dot_product_projection_text.bias
    bias = e @ deep.bias_lang + deep.bias0
    for lv, f in enumerate(fused_feats):
        q = f.flatten(2).transpose(1, 2)  # [B, H*W, C]
        ref = torch.einsum("bac,btc->bat", q, proj) / torch.exp(deep.log_scale) + bias[:, None, :]
        torch.testing.assert_close(out.logits[lv], ref, atol=1e-5, rtol=1e-5)
        reg = F.conv2d(f, deep.bbox_pred.weight, deep.bbox_pred.bias) * deep.scales[lv].scale
        torch.testing.assert_close(out.bbox_reg[lv], reg.flatten(2).transpose(1, 2))
        ctr = F.conv2d(f, deep.centerness.weight, deep.centerness.bias)
        torch.testing.assert_close(out.centerness[lv], ctr.flatten(1))


def test_deep_fusion_scores_against_fused_hidden_not_embedded(deep):
    cfg = get_preset("glip-tiny")
    feats, hidden, embedded, mask = make_inputs(cfg)
    a = deep(feats, hidden, embedded, mask)
    b = deep(feats, hidden, torch.randn_like(embedded), mask)
    torch.testing.assert_close(a.logits[0], b.logits[0])
    c = deep(feats, hidden + 1.0, embedded, mask)
    assert not torch.allclose(a.logits[0], c.logits[0])


def test_late_fusion_scores_against_embedded_and_ignores_hidden():
    torch.manual_seed(0)
    cfg = replace(get_preset("glip-tiny"), fusion="late")
    head = VLDyHead(cfg).eval()
    feats, hidden, embedded, mask = make_inputs(cfg)
    a = head(feats, hidden, embedded, mask)
    b = head(feats, torch.randn_like(hidden), embedded, mask)
    for la, lb in zip(a.logits, b.logits):
        torch.testing.assert_close(la, lb)
    e = F.normalize(embedded, dim=-1)  # padded tokens: zero vector stays zero, bias = bias0
    tok_bias = e @ head.bias_lang + head.bias0
    proj = head.dot_product_projection_text(e / 2)
    q = head.tower(feats, hidden, mask)[0][2].flatten(2).transpose(1, 2)
    torch.testing.assert_close(a.logits[2], q @ proj.transpose(1, 2) + tok_bias[:, None])


def test_logits_are_clamped():
    head = VLDyHead(get_preset("glip-tiny", fusion="late")).eval()
    cfg = get_preset("glip-tiny")
    feats, hidden, embedded, mask = make_inputs(cfg)
    with torch.no_grad():
        head.log_scale.fill_(-30.0)  # divide by exp(-30): would overflow fp16 ranges
    out = head(feats, hidden, embedded, mask)
    assert max(x.abs().max().item() for x in out.logits) <= 50000.0


@pytest.mark.parametrize("fusion", ["deep", "late"])
def test_tower_then_predict_is_forward(fusion):
    """forward = predict(tower(...)); late fusion's text-free tower and box branches can be computed once and
    reused for another prompt with the same outputs as a fresh forward."""
    torch.manual_seed(0)
    head = VLDyHead(get_preset("glip-tiny", fusion=fusion)).eval()
    feats, hidden, embedded, mask = make_inputs(get_preset("glip-tiny"))
    _, hidden2, embedded2, _ = make_inputs(get_preset("glip-tiny"), seed=1)
    with torch.no_grad():
        head.bias_lang.normal_()
        out = head(feats, hidden, embedded, mask)
        tower_feats, fused = head.tower(feats, hidden, mask)
        split = head.predict(tower_feats, fused, embedded)
        for field in ("logits", "bbox_reg", "centerness"):
            for a, b in zip(getattr(out, field), getattr(split, field)):
                assert torch.equal(a, b), field
        assert head.text_free_tower == (fusion == "late") and (fused is None) == (fusion == "late")
        if fusion == "late":  # one tower + box branches for two prompts
            cached, _ = head.tower(feats)
            boxes = head.box_branches(cached)
            other = head.predict(cached, None, embedded2, boxes)
            fresh = head(feats, hidden2, embedded2, mask)
            for a, b in zip(other.logits + other.bbox_reg, fresh.logits + fresh.bbox_reg):
                assert torch.equal(a, b)
            assert not torch.equal(other.logits[0], out.logits[0])


def test_deep_tower_needs_the_text():
    head = VLDyHead(get_preset("glip-tiny"))
    feats, _, embedded, _ = make_inputs(get_preset("glip-tiny"))
    with pytest.raises(ValueError, match="needs the text"):
        head.tower(feats)
    with pytest.raises(ValueError, match="fused hidden"):
        head.predict(feats, None, embedded)
    with pytest.raises(ValueError, match="feature levels"):
        head.tower(feats[:4])
